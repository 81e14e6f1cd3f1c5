using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Mobility.Protocol;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Client;

/// <summary>The datagram side: one socket, one receive loop, requests matched to replies by id.</summary>
public sealed partial class GnsClient
{
    private readonly Socket _socket;
    private readonly Task _receiveLoop;
    private readonly CancellationTokenSource _closed = new();
    private readonly ConcurrentDictionary<uint, PendingRequest> _pending = new();
    private uint _nextRequestId = BinaryPrimitives.ReadUInt32BigEndian(RandomNumberGenerator.GetBytes(4));
    private Exception? _abortReason;
    private int _disposed;

    /// <summary>
    /// The one datagram socket: of the GNS's family, or dual-stack (IPv6 with IPv4-mapped addresses) when its
    /// addresses span both families; IPv4 only when the kernel has no IPv6 and the GNS's first address is IPv4.
    /// </summary>
    private (Socket Socket, Task Loop) StartUdp()
    {
        // A resolver may later answer addresses of either family: then a dual-stack socket from the start.
        var all = _set.All;
        var v6 = _options.Resolve is not null || all.Any(e => e.Udp.AddressFamily == AddressFamily.InterNetworkV6);
        var v4 = _options.Resolve is not null || all.Any(e => e.Udp.AddressFamily == AddressFamily.InterNetwork);
        Socket socket;
        try
        {
            socket = v6 ? new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp) { DualMode = v4 }
                : new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        }
        catch (SocketException) when (v6 && all[0].Udp.AddressFamily == AddressFamily.InterNetwork)
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        }

        try
        {
            socket.Bind(new IPEndPoint(socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return (socket, ReceiveLoopAsync(socket));
    }

    private async Task StopUdpAsync()
    {
        await _closed.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _receiveLoop.ConfigureAwait(false);
        FailPending(new ObjectDisposedException(nameof(GnsClient)));
        _closed.Dispose();
    }

    private async Task ReceiveLoopAsync(Socket socket)
    {
        // One byte more than the largest datagram, so an oversized one is seen as such and dropped.
        var buffer = new byte[GnsDatagram.MaxDatagramSize + 1];
        EndPoint any = new IPEndPoint(
            socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        var token = _closed.Token;
        await Task.Yield();
        while (!token.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e) when (IsTransient(e.SocketErrorCode))
            {
                // ICMP errors reported by some systems (port unreachable, oversized datagram): keep going.
                GnsClientLog.TransientReceiveError(_logger, e.SocketErrorCode.ToString());
                continue;
            }
            catch (SocketException e)
            {
                GnsClientLog.ReceiveLoopFailed(_logger, e);
                Abort(e);
                return;
            }

            OnDatagram(buffer.AsSpan(0, received.ReceivedBytes), received.RemoteEndPoint);
        }
    }

    private static bool IsTransient(SocketError error) => error is SocketError.ConnectionReset or SocketError.ConnectionRefused
        or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.MessageSize
        or SocketError.HostDown or SocketError.NetworkDown or SocketError.TimedOut;

    /// <summary>Handles one datagram. Never throws: anything hostile is dropped and logged at Debug.</summary>
    private void OnDatagram(ReadOnlySpan<byte> datagram, EndPoint source)
    {
        if (source is not IPEndPoint from || !IsGnsEndPoint(new IPEndPoint(Locator.Normalize(from.Address), from.Port)))
        {
            GnsClientLog.StrayDatagram(_logger, source, Server);
            return;
        }

        OnReply(datagram, overTls: false);
    }

    /// <summary>Handles one reply from the GNS, a datagram or a message over TLS. Never throws.</summary>
    private void OnReply(ReadOnlySpan<byte> datagram, bool overTls)
    {
        GnsResponse response;
        try
        {
            response = GnsDatagram.ParseResponse(datagram);
        }
        catch (MalformedMessageException e)
        {
            GnsClientLog.MalformedReply(_logger, e.Message);
            return;
        }
        catch (ArgumentException e)
        {
            GnsClientLog.MalformedReply(_logger, e.Message);
            return;
        }

        if (!_pending.TryGetValue(response.RequestId, out var pending))
        {
            GnsClientLog.UnmatchedReply(_logger, response.RequestId);
            return;
        }

        if (response.Type == GnsMessageType.Error && response.ErrorCode == GnsErrorCode.Unavailable)
        {
            // "Busy; retry shortly": the attempt's timeout paces the retransmission.
            pending.LastBusy = Printable(response.ErrorMessage);
            GnsClientLog.RejectedReply(_logger, response.RequestId, $"GNS busy: {pending.LastBusy}");
            return;
        }

        string? rejection = null;
        if (response.Type != GnsMessageType.Error && response.Type != pending.Expected)
        {
            rejection = $"expected a {pending.Expected} reply, got {response.Type}";
        }
        else if (response.Type != GnsMessageType.Error)
        {
            rejection = pending.Check(response);
        }

        if (rejection is not null)
        {
            // Keep waiting: the genuine reply may still come. If none does, the request reports this reason.
            pending.LastRejection = rejection;
            GnsClientLog.RejectedReply(_logger, response.RequestId, rejection);
            return;
        }

        if (pending.Completion.TrySetResult(response))
        {
            RepliedOver(overTls);
        }
    }

    private void Abort(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _abortReason, reason, null) is null)
        {
            FailPending(new GnsException(GnsErrorCode.Unavailable, $"GNS client socket failed: {reason.Message}", reason));
        }
    }

    private void FailPending(Exception exception)
    {
        foreach (var (_, pending) in _pending)
        {
            pending.Completion.TrySetException(exception);
        }
    }

    /// <summary>
    /// Sends a request and waits for a matching, acceptable reply (or an error reply), retransmitting
    /// with doubling timeouts. Error replies are returned, not thrown.
    /// </summary>
    /// <exception cref="GnsException">Unavailable after all attempts, or InvalidRecord when only unacceptable replies came.</exception>
    /// <remarks>
    /// Each attempt goes to the GNS address in use then (<see cref="Server"/>), unless <paramref name="to"/> names
    /// one; a send that finds no route moves the client to another address at once and sends there, and a first
    /// attempt with no answer starts a race between the GNS's addresses (<see cref="GnsClientOptions.Alternates"/>).
    /// <paramref name="attempts"/> overrides <see cref="GnsClientOptions.Attempts"/>.
    /// </remarks>
    private async Task<GnsResponse> ExchangeAsync(Func<uint, byte[]> build, GnsMessageType expected,
        Func<GnsResponse, string?> check, CancellationToken cancellationToken, IPEndPoint? to = null, int? attempts = null)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (_abortReason is { } aborted)
        {
            throw new GnsException(GnsErrorCode.Unavailable, $"GNS client socket failed: {aborted.Message}", aborted);
        }

        var pending = new PendingRequest(expected, check);
        uint id;
        do
        {
            id = Interlocked.Increment(ref _nextRequestId);
        }
        while (!_pending.TryAdd(id, pending));

        try
        {
            var datagram = build(id);
            var total = attempts ?? _options.Attempts;
            for (var attempt = 0; attempt < total; attempt++)
            {
                var timeout = _options.AttemptTimeout(attempt) * (1 + (Random.Shared.NextDouble() * GnsClientOptions.RetransmitJitter));
                var server = to ?? Server;
                var overTls = OverTls(attempt, to);
                // Over TLS the connection is opened first (its own timeout); a failed connect leaves the attempt to time out.
                var connected = overTls && await EnsureTlsAsync(cancellationToken).ConfigureAwait(false);
                // The timer starts before the datagram leaves, so the wait never outlives the documented bound.
                var reply = pending.Completion.Task.WaitAsync(timeout, _time, cancellationToken);
                if (overTls)
                {
                    server = _options.TlsServer!;
                    if (connected)
                    {
                        // Not awaited, as a datagram's send: the reply may come before the write completes.
                        _ = SendOverTlsAsync(datagram);
                    }
                }
                else if (!await TrySendAsync(datagram, server, cancellationToken).ConfigureAwait(false)
                    && to is null && SwitchAfterSendFailure(server) is { } other)
                {
                    // The host cannot reach that address now (it left its family): the next one at once.
                    server = other;
                    await TrySendAsync(datagram, server, cancellationToken).ConfigureAwait(false);
                }

                try
                {
                    return await reply.ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    GnsClientLog.AttemptTimedOut(_logger, server, id, timeout, attempt + 1, total);
                    if (attempt == 0 && to is null && !overTls && _set.All.Length > 1)
                    {
                        // Silent, not refused: maybe a path that died without an address change. Another address may answer.
                        StartRace(null, null, restart: false);
                    }
                }
            }

            if (pending.LastRejection is { } rejection)
            {
                throw new GnsException(GnsErrorCode.InvalidRecord,
                    $"GNS at {Server} sent no acceptable reply after {total} attempts: {rejection}");
            }

            if (pending.LastBusy is { } busy)
            {
                throw new GnsException(GnsErrorCode.Unavailable, $"GNS at {Server} busy after {total} attempts ({busy})");
            }

            throw new GnsException(GnsErrorCode.Unavailable, $"GNS at {Server} unreachable after {total} attempts{TlsFailureSuffix()}");
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Sends one datagram; false when the kernel refused it (no route, or a family this socket cannot carry).</summary>
    private async ValueTask<bool> TrySendAsync(byte[] datagram, IPEndPoint server, CancellationToken cancellationToken)
    {
        if (server.AddressFamily == AddressFamily.InterNetworkV6 && _socket.AddressFamily != AddressFamily.InterNetworkV6)
        {
            GnsClientLog.SendFailed(_logger, server, "no IPv6 on this host");
            return false;
        }

        try
        {
            await _socket.SendToAsync(datagram, SocketFlags.None, server, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (SocketException e)
        {
            // No route or similar: the attempt's timeout still paces the next try.
            GnsClientLog.SendFailed(_logger, server, e.SocketErrorCode.ToString());
            return false;
        }
    }

    private GnsException ErrorReply(GnsResponse response)
    {
        var detail = Printable(response.ErrorMessage);
        return new GnsException(response.ErrorCode,
            $"GNS at {Server}: {GnsDatagram.Describe(response.ErrorCode)}{(detail.Length > 0 ? $" ({detail})" : "")}");
    }

    private async Task<GnsRecord?> UdpLookupAsync(HostGuid guid, CancellationToken cancellationToken)
    {
        var response = await ExchangeAsync(id => GnsDatagram.LookupGuid(id, guid), GnsMessageType.RecordReply,
            r => Check(r.Record, guid, null), cancellationToken).ConfigureAwait(false);
        return RecordOrNull(response);
    }

    private async Task<GnsRecord?> UdpLookupNameAsync(string name, CancellationToken cancellationToken)
    {
        var response = await ExchangeAsync(id => GnsDatagram.LookupName(id, name), GnsMessageType.RecordReply,
            r => Check(r.Record, null, name), cancellationToken).ConfigureAwait(false);
        return RecordOrNull(response);
    }

    private GnsRecord? RecordOrNull(GnsResponse response) => response.Type switch
    {
        GnsMessageType.RecordReply => response.Record,
        _ when response.ErrorCode == GnsErrorCode.NotFound => null,
        _ => throw ErrorReply(response),
    };

    private async Task<(IReadOnlyList<HostGuid> Guids, bool Truncated)> UdpReverseAsync(IPAddress address, CancellationToken cancellationToken)
    {
        var response = await ExchangeAsync(id => GnsDatagram.Reverse(id, address), GnsMessageType.GuidListReply,
            static _ => null, cancellationToken).ConfigureAwait(false);
        return response.Type switch
        {
            GnsMessageType.GuidListReply => (response.Guids, response.Truncated),
            _ when response.ErrorCode == GnsErrorCode.NotFound => ([], false),
            _ => throw ErrorReply(response),
        };
    }

    private async Task<GnsUpdateResult> UdpUpdateAsync(GnsRecord record, CancellationToken cancellationToken)
    {
        var response = await ExchangeAsync(id => GnsDatagram.Update(id, record), GnsMessageType.UpdateAck,
            static _ => null, cancellationToken).ConfigureAwait(false);
        return response.Type == GnsMessageType.UpdateAck
            ? new GnsUpdateResult(response.Version, response.Observed)
            : throw ErrorReply(response);
    }

    /// <summary>
    /// The address and port the GNS sees this client's datagram socket at (a Reflect, docs/protocol.md, "Reflect"):
    /// what an UpdateAck would have carried. Null when the GNS does not answer one (a GNS without Reflect).
    /// </summary>
    private async Task<IPEndPoint?> ObservedAgainAsync(CancellationToken cancellationToken)
    {
        try
        {
            var response = await ExchangeAsync(id => GnsDatagram.Reflect(id), GnsMessageType.ReflectReply,
                static _ => null, cancellationToken, attempts: 2).ConfigureAwait(false);
            return response.Type == GnsMessageType.ReflectReply ? response.Observed : null;
        }
        catch (GnsException)
        {
            return null;
        }
    }

    private async Task<ulong> UdpRemoveAsync(GnsRemoval removal, CancellationToken cancellationToken)
    {
        var response = await ExchangeAsync(id => GnsDatagram.Remove(id, removal), GnsMessageType.RemoveAck,
            static _ => null, cancellationToken).ConfigureAwait(false);
        return response.Type == GnsMessageType.RemoveAck ? response.Version : throw ErrorReply(response);
    }

    private sealed class PendingRequest(GnsMessageType expected, Func<GnsResponse, string?> check)
    {
        public TaskCompletionSource<GnsResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public GnsMessageType Expected => expected;

        public Func<GnsResponse, string?> Check => check;

        /// <summary>Why the last unacceptable reply was dropped; reported if no acceptable one comes.</summary>
        public volatile string? LastRejection;

        /// <summary>The text of the last "busy" (Unavailable) error reply, if any.</summary>
        public volatile string? LastBusy;
    }
}
