using System.Net;
using System.Net.Sockets;

namespace Mobility.Testing;

/// <summary>A plain UDP echo server on 127.0.0.1: sends every datagram back to its source; counts the sources it has seen.</summary>
public sealed class UdpEchoServer : IAsyncDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private readonly CancellationTokenSource _cts = new();
    private readonly HashSet<IPEndPoint> _sources = [];
    private readonly Task _loop;

    public UdpEchoServer()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _loop = EchoAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    public int Port => EndPoint.Port;

    /// <summary>Distinct source endpoints seen so far.</summary>
    public int Sources
    {
        get
        {
            lock (_sources)
            {
                return _sources.Count;
            }
        }
    }

    private async Task EchoAsync()
    {
        var buffer = new byte[65536];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!_cts.IsCancellationRequested)
        {
            try
            {
                var received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _cts.Token).ConfigureAwait(false);
                lock (_sources)
                {
                    _sources.Add((IPEndPoint)received.RemoteEndPoint);
                }

                await _socket.SendToAsync(buffer.AsMemory(0, received.ReceivedBytes), SocketFlags.None, received.RemoteEndPoint, _cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                // ICMP unreachable from a source that went away.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _socket.Dispose();
        _cts.Dispose();
    }
}
