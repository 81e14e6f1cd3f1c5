using System.Buffers;
using System.Net.Sockets;
using Mobility.Transport;

namespace Mobility.Daemon.Forwarding;

/// <summary>Why a UDP session ended.</summary>
public enum UdpRelayEnd
{
    /// <summary>No datagram either way for the idle timeout.</summary>
    Idle,

    /// <summary>The peer closed the session (its side of the stream ended).</summary>
    PeerClosed,

    /// <summary>The mobile connection failed.</summary>
    Failed,

    /// <summary>The daemon (or the forward) is stopping.</summary>
    Stopped,
}

/// <summary>
/// One UDP session over a mobile connection opened with a UDP open header: datagram frames from the
/// peer go to the local side, datagrams from the local side (<see cref="FromLocal"/>) to the peer.
/// Nothing is retransmitted or waited for: a full queue or a path being replaced drops, as UDP does.
/// The session ends after <c>idleTimeout</c> without a datagram either way (on the injected clock), when
/// the peer closes its side of the stream (which carries nothing after the open header), or when the
/// connection fails; it then closes the connection gracefully so the peer's session ends too.
/// </summary>
public sealed class UdpRelay : IDisposable
{
    private readonly MobileConnection _connection;
    private readonly Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> _sendLocal;
    private readonly TimeSpan _idleTimeout;
    private readonly CancellationTokenSource _idle;

    /// <param name="sendLocal">Sends one datagram to the local application (a SocketException drops it).</param>
    public UdpRelay(MobileConnection connection, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> sendLocal, TimeSpan idleTimeout, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(sendLocal);
        _connection = connection;
        _sendLocal = sendLocal;
        _idleTimeout = idleTimeout;
        _idle = new CancellationTokenSource(idleTimeout, time);
    }

    /// <summary>Cancelled once the session is over (idle, or ended by <see cref="RunAsync"/>).</summary>
    public CancellationToken Ended => _idle.Token;

    /// <summary>
    /// A datagram from the local application, for the peer. Empty datagrams and datagrams over
    /// <see cref="MobileConnection.MaxDatagramSize"/> are dropped (the transport carries 1 byte to
    /// 32 KiB); so are datagrams the connection's queue refuses (counted in its statistics).
    /// </summary>
    public void FromLocal(ReadOnlySpan<byte> datagram)
    {
        if (datagram.IsEmpty || datagram.Length > MobileConnection.MaxDatagramSize)
        {
            return;
        }

        try
        {
            if (_connection.SendDatagram(datagram))
            {
                Touch();
            }
        }
        catch (MobileConnectionException)
        {
            // Seen by RunAsync, which ends the session.
        }
    }

    /// <summary>Relays until the session ends; then closes the connection (gracefully unless it failed). The caller disposes the connection.</summary>
    public async Task<UdpRelayEnd> RunAsync(TimeSpan closeTimeout, CancellationToken stopping)
    {
        UdpRelayEnd end;
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(_idle.Token, stopping))
        {
            var toLocal = ToLocalAsync(linked.Token);
            var watch = WatchStreamAsync(linked.Token);
            var first = await Task.WhenAny(toLocal, watch).ConfigureAwait(false);
            end = first.IsCompletedSuccessfully ? first.Result
                : stopping.IsCancellationRequested ? UdpRelayEnd.Stopped
                : _idle.IsCancellationRequested ? UdpRelayEnd.Idle
                : UdpRelayEnd.Failed;
            await linked.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(Quietly(toLocal), Quietly(watch)).ConfigureAwait(false);
        }

        await _idle.CancelAsync().ConfigureAwait(false);
        if (end is UdpRelayEnd.Failed || _connection.Failure is not null)
        {
            return UdpRelayEnd.Failed;
        }

        using var close = new CancellationTokenSource(closeTimeout);
        try
        {
            await _connection.CloseAsync(close.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            _connection.Abort("UDP session close timed out");
        }

        return end;
    }

    private async Task<UdpRelayEnd> ToLocalAsync(CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MobileConnection.MaxDatagramSize);
        try
        {
            while (true)
            {
                var length = await _connection.ReceiveDatagramAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (length == 0)
                {
                    return UdpRelayEnd.PeerClosed;
                }

                Touch();
                try
                {
                    await _sendLocal(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    // Nobody listens on the local port (ICMP port unreachable) or the buffer is full: dropped, as UDP would.
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The stream carries nothing after the open header: its end is the peer closing the session; a byte on it is a protocol error.</summary>
    private async Task<UdpRelayEnd> WatchStreamAsync(CancellationToken cancellationToken)
    {
        var one = new byte[1];
        if (await _connection.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
        {
            return UdpRelayEnd.PeerClosed;
        }

        _connection.Abort("stream bytes on a UDP session");
        return UdpRelayEnd.Failed;
    }

    private void Touch()
    {
        try
        {
            _idle.CancelAfter(_idleTimeout);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static async Task Quietly(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or MobileConnectionException or ObjectDisposedException or IOException)
        {
        }
    }

    public void Dispose() => _idle.Dispose();
}
