using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mobility.Net.RateLimiting;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;
using Mobility.Protocol.Relay;
using Mobility.Relay.Registry;

namespace Mobility.Relay.Connections;

/// <summary>
/// Every connection to the relay (plain TCP or TLS, hosted by Kestrel with
/// <c>UseConnectionHandler&lt;RelayConnectionHandler&gt;()</c>): its first message makes it a host's
/// control connection (Register), a dialler's data connection (Dial) or a host's data connection
/// (Accept). docs/protocol.md, "Relay".
/// </summary>
public sealed partial class RelayConnectionHandler : ConnectionHandler
{
    private readonly RelayOptions _options;
    private readonly RelayLimits _limits;
    private readonly RelayCounters _counters;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HostRegistry _registry;
    private readonly SourceRateLimiter _registrationsBySource;
    private readonly SourceRateLimiter<HostGuid> _registrationsByGuid;
    private readonly SourceRateLimiter _dialsBySource;
    private readonly SourceRateLimiter<HostGuid> _dialsByGuid;
    private readonly Lock _unidentifiedGate = new();
    private readonly Dictionary<UInt128, int> _unidentifiedBySource = [];
    private int _activePairs;

    public RelayConnectionHandler(IOptions<RelayOptions> options, RelayCounters counters, TimeProvider time, ILogger<RelayConnectionHandler> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _limits = _options.Limits;
        _counters = counters;
        _time = time;
        _logger = logger;
        _registry = new HostRegistry(_limits, counters);
        var max = _limits.MaxRateLimitedSources;
        _registrationsBySource = new SourceRateLimiter(new SourceRateLimits(_limits.RegistrationsPerSecond, _limits.RegistrationBurst, max, null), time);
        _registrationsByGuid = new SourceRateLimiter<HostGuid>(new SourceRateLimits(_limits.GuidRegistrationsPerSecond, _limits.GuidRegistrationBurst, max, null), time);
        _dialsBySource = new SourceRateLimiter(new SourceRateLimits(_limits.DialsPerSecond, _limits.DialBurst, max, null), time);
        _dialsByGuid = new SourceRateLimiter<HostGuid>(new SourceRateLimits(_limits.GuidDialsPerSecond, _limits.GuidDialBurst, max, null), time);
        if (_options.Allowed is { } allowed)
        {
            RelayLog.AllowList(logger, allowed.Count);
        }
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _counters.Connection();
        ref var unidentified = ref _counters.UnidentifiedGauge;
        if (Interlocked.Increment(ref unidentified) > _limits.MaxUnidentified)
        {
            Interlocked.Decrement(ref unidentified);
            _counters.UnidentifiedDrop();
            RelayLog.TooManyUnidentified(_logger, connection.RemoteEndPoint, _limits.MaxUnidentified);
            return;
        }

        var source = SourceAddress(connection) is { } address ? SourceRateLimiter.KeyOf(address) : (UInt128?)null;
        if (source is { } key && !TryHoldUnidentified(key))
        {
            Interlocked.Decrement(ref unidentified);
            _counters.UnidentifiedDrop();
            RelayLog.TooManyUnidentifiedFromSource(_logger, connection.RemoteEndPoint, _limits.MaxUnidentifiedPerSource);
            return;
        }

        var identified = false;
        void Identified()
        {
            if (!identified)
            {
                identified = true;
                Interlocked.Decrement(ref _counters.UnidentifiedGauge);
                if (source is { } key)
                {
                    ReleaseUnidentified(key);
                }
            }
        }

        try
        {
            using var firstTimeout = new CancellationTokenSource(_limits.FirstMessageTimeout, _time);
            var input = connection.Transport.Input;
            var first = await ReadAsync(input, connection, firstTimeout.Token).ConfigureAwait(false);
            switch (first)
            {
                case RelayRegister:
                    await RegisterAsync(connection, firstTimeout.Token, Identified).ConfigureAwait(false);
                    break;
                case RelayDial dial:
                    Identified();
                    await DialAsync(connection, dial).ConfigureAwait(false);
                    break;
                case RelayAccept accept:
                    Identified();
                    await AcceptAsync(connection, accept).ConfigureAwait(false);
                    break;
                case null:
                    break;
                default:
                    RelayLog.Malformed(_logger, connection.RemoteEndPoint, $"a {first.Type} cannot open a connection");
                    _counters.MalformedInput();
                    break;
            }
        }
        catch (OperationCanceledException)
        {
            _counters.FirstMessageTimeout();
            RelayLog.FirstMessageTimeout(_logger, connection.RemoteEndPoint);
        }
        catch (MalformedMessageException e)
        {
            _counters.MalformedInput();
            RelayLog.Malformed(_logger, connection.RemoteEndPoint, e.Message);
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or ObjectDisposedException or InvalidOperationException)
        {
            RelayLog.ConnectionFailed(_logger, connection.RemoteEndPoint, e.Message);
        }
        finally
        {
            Identified();
        }
    }

    /// <summary>
    /// Register: a fresh nonce; the host's proof must verify, name one of this relay's endpoints,
    /// and pass admission and the rate limits; then the connection is the host's control connection
    /// until it closes or idles past <see cref="RelayLimits.ControlIdleTimeout"/>.
    /// </summary>
    private async Task RegisterAsync(ConnectionContext connection, CancellationToken proofTimeout, Action identified)
    {
        var source = SourceAddress(connection);
        if (source is not null && !_registrationsBySource.TryAcquire(source))
        {
            await RefuseAsync(connection, RelayStatus.RateLimited, "registrations from this source").ConfigureAwait(false);
            return;
        }

        var nonce = RelayMessage.NewRandom(RelayMessage.NonceSize);
        await connection.Transport.Output.WriteAsync(new RelayChallenge(nonce).Encode(), proofTimeout).ConfigureAwait(false);
        if (await ReadAsync(connection.Transport.Input, connection, proofTimeout).ConfigureAwait(false) is not { } message)
        {
            return;
        }

        if (message is not RelayProof proof)
        {
            throw new MalformedMessageException($"A {message.Type} where a Proof belongs.");
        }

        if (!proof.Verify(nonce) || !IsOwnEndPoint(connection, proof.Relay))
        {
            await RefuseAsync(connection, RelayStatus.BadProof, $"proof for {proof.Guid.ToShortString()} does not verify for {proof.Relay}").ConfigureAwait(false);
            return;
        }

        if (_options.Allowed is { } allowed && !allowed.Contains(proof.Guid))
        {
            await RefuseAsync(connection, RelayStatus.NotAdmitted, $"{proof.Guid.ToShortString()} is not on the allow-list").ConfigureAwait(false);
            return;
        }

        if (!_registrationsByGuid.TryAcquire(proof.Guid))
        {
            await RefuseAsync(connection, RelayStatus.RateLimited, $"registrations of {proof.Guid.ToShortString()}").ConfigureAwait(false);
            return;
        }

        var session = new HostSession(proof.Guid, connection);
        if (!_registry.TryRegister(session, out var replaced))
        {
            await RefuseAsync(connection, RelayStatus.Full, "the relay holds as many hosts as it allows").ConfigureAwait(false);
            return;
        }

        identified();
        try
        {
            _counters.Registered();
            RelayLog.Registered(_logger, proof.Guid.ToShortString(), connection.RemoteEndPoint, replaced is not null);
            try
            {
                await session.SendAsync(new RelayResult(RelayStatus.Ok), connection.ConnectionClosed).ConfigureAwait(false);
            }
            finally
            {
                // After the Ok: the diallers whose splices this cuts dial again at once, and their splice
                // requests must reach the new registration after its Ok.
                replaced?.Close();
            }

            await ServeControlAsync(session).ConfigureAwait(false);
        }
        finally
        {
            _registry.Unregister(session);
            session.End();
            RelayLog.Unregistered(_logger, proof.Guid.ToShortString());
        }
    }

    /// <summary>The control connection's read side: pings are answered; anything else ends it, as does silence.</summary>
    private async Task ServeControlAsync(HostSession session)
    {
        var connection = session.Connection;
        while (true)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
            idle.CancelAfter(_limits.ControlIdleTimeout);
            RelayMessage? message;
            try
            {
                message = await ReadAsync(connection.Transport.Input, connection, idle.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                RelayLog.ControlIdle(_logger, session.Guid.ToShortString());
                return;
            }

            switch (message)
            {
                case null:
                    return;
                case RelayPing ping:
                    await session.SendAsync(new RelayPong(ping.Token), connection.ConnectionClosed).ConfigureAwait(false);
                    break;
                case RelayPong:
                    break;
                default:
                    throw new MalformedMessageException($"A {message.Type} on a control connection.");
            }
        }
    }

    /// <summary>Dial: ask the registered host for a data connection, wait for it, splice.</summary>
    private async Task DialAsync(ConnectionContext dialer, RelayDial dial)
    {
        _counters.Dial();
        var source = SourceAddress(dialer);
        if ((source is not null && !_dialsBySource.TryAcquire(source)) || !_dialsByGuid.TryAcquire(dial.Target))
        {
            await RefuseAsync(dialer, RelayStatus.RateLimited, $"dials from this source or to {dial.Target.ToShortString()}").ConfigureAwait(false);
            return;
        }

        if (_registry.Find(dial.Target) is not { } session)
        {
            await RefuseAsync(dialer, RelayStatus.UnknownHost, $"{dial.Target.ToShortString()} is not registered here").ConfigureAwait(false);
            return;
        }

        if (Volatile.Read(ref _activePairs) >= _limits.MaxSplices || _registry.AddPending(dial.Target) is not { } pending)
        {
            await RefuseAsync(dialer, RelayStatus.Full, "too many splices").ConfigureAwait(false);
            return;
        }

        ConnectionContext host;
        // A registration that ends meanwhile will not answer its splice request: the dial is refused at once.
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(dialer.ConnectionClosed, session.Ended))
        {
            timeout.CancelAfter(_limits.PendingSpliceTimeout);
            try
            {
                _ = await session.SendAsync(new RelaySpliceRequest(pending.Id), timeout.Token).ConfigureAwait(false);
                host = await pending.Acceptor.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (pending.Acceptor.TrySetCanceled())
            {
                _registry.RemovePending(pending);
                _counters.SpliceTimeout();
                await RefuseAsync(dialer, RelayStatus.HostTimeout, $"{dial.Target.ToShortString()} did not open its data connection in time").ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException)
            {
                // The host's Accept won the race with the timeout: splice.
                host = await pending.Acceptor.Task.ConfigureAwait(false);
            }
        }

        Interlocked.Increment(ref _activePairs);
        Interlocked.Increment(ref _counters.ActiveGauge);
        try
        {
            var ok = new RelayResult(RelayStatus.Ok).Encode();
            await host.Transport.Output.WriteAsync(ok).ConfigureAwait(false);
            await dialer.Transport.Output.WriteAsync(ok).ConfigureAwait(false);
            _counters.SpliceStarted();
            RelayLog.Spliced(_logger, dialer.RemoteEndPoint, dial.Target.ToShortString());
            var (endedBy, up, down) = await Splicer.RunAsync(dialer, host, _counters, session.Ended).ConfigureAwait(false);
            if (endedBy == Splicer.Side.Registration)
            {
                _counters.SpliceCut();
                RelayLog.SpliceCut(_logger, dial.Target.ToShortString(), up, down);
            }
            else
            {
                RelayLog.SpliceEnded(_logger, dial.Target.ToShortString(), endedBy.ToString(), up, down);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _activePairs);
            Interlocked.Decrement(ref _counters.ActiveGauge);
            pending.Done.TrySetResult();
        }
    }

    /// <summary>Accept: the host's data connection for a pending splice (its id is known only to the relay and the host's control connection).</summary>
    private async Task AcceptAsync(ConnectionContext host, RelayAccept accept)
    {
        if (_registry.TakePending(accept.Host, accept.SpliceId) is not { } pending || !pending.Acceptor.TrySetResult(host))
        {
            await RefuseAsync(host, RelayStatus.UnknownSplice, $"no pending splice for {accept.Host.ToShortString()} with that id").ConfigureAwait(false);
            return;
        }

        // Kestrel closes the connection when this handler returns: wait until the dialler's handler ends the splice.
        await pending.Done.Task.ConfigureAwait(false);
    }

    private async Task RefuseAsync(ConnectionContext connection, RelayStatus status, string why)
    {
        _counters.Refused(status);
        RelayLog.Refused(_logger, connection.RemoteEndPoint, RelayCounters.Describe(status), why);
        using var timeout = new CancellationTokenSource(_limits.FirstMessageTimeout, _time);
        try
        {
            await connection.Transport.Output.WriteAsync(new RelayResult(status).Encode(), timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A peer that does not read its refusal is closed all the same.
        }
    }

    /// <summary>Reads one relay message; null when the peer closed first.</summary>
    private static async Task<RelayMessage?> ReadAsync(PipeReader input, ConnectionContext connection, CancellationToken cancellationToken)
    {
        _ = connection;
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = read.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            bool complete;
            RelayMessage message;
            try
            {
                complete = RelayMessage.TryRead(ref reader, out message);
            }
            catch (MalformedMessageException)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                throw;
            }

            if (complete)
            {
                input.AdvanceTo(reader.Position);
                return message;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted || read.IsCanceled)
            {
                return null;
            }
        }
    }

    private bool IsOwnEndPoint(ConnectionContext connection, IPEndPoint named)
        => (connection.LocalEndPoint is IPEndPoint local && Normalize(local).Equals(named))
           || _options.Advertised.Any(a => Normalize(a).Equals(named));

    private static IPEndPoint Normalize(IPEndPoint endPoint) => new(Locator.Normalize(endPoint.Address), endPoint.Port);

    private static IPAddress? SourceAddress(ConnectionContext connection) => (connection.RemoteEndPoint as IPEndPoint)?.Address;

    /// <summary>Takes one of the source's unidentified places (<see cref="RelayLimits.MaxUnidentifiedPerSource"/>), or false when it holds them all.</summary>
    private bool TryHoldUnidentified(UInt128 source)
    {
        lock (_unidentifiedGate)
        {
            _unidentifiedBySource.TryGetValue(source, out var held);
            if (held >= _limits.MaxUnidentifiedPerSource)
            {
                return false;
            }

            _unidentifiedBySource[source] = held + 1;
            return true;
        }
    }

    /// <summary>Gives a place back; a source with none held leaves the table, which so holds at most <see cref="RelayLimits.MaxUnidentified"/> entries.</summary>
    private void ReleaseUnidentified(UInt128 source)
    {
        lock (_unidentifiedGate)
        {
            if (_unidentifiedBySource.TryGetValue(source, out var held))
            {
                if (held <= 1)
                {
                    _unidentifiedBySource.Remove(source);
                }
                else
                {
                    _unidentifiedBySource[source] = held - 1;
                }
            }
        }
    }
}
