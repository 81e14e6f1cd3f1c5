using System.Net;
using System.Net.Sockets;
using System.Text;
using Mobility.Netlab.Interop;
using Mobility.Netlab.Systems;

namespace Mobility.Netlab.FunctionalTests.Infrastructure;

/// <summary>
/// A server on the "internet" of the NAT kit that answers every UDP datagram, and every TCP connection, with the
/// source endpoint it saw (<c>IP:PORT</c>): the NAT's mapping as that server observes it.
/// </summary>
internal sealed class AddressReflector : IAsyncDisposable
{
    public const int Port = 3478;

    private readonly Socket _udp;
    private readonly Socket _tcp;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _udpLoop;
    private readonly Task _tcpLoop;

    public AddressReflector(string ns, IPAddress address)
    {
        EndPoint = new IPEndPoint(address, Port);
        _udp = NetworkNamespace.Run(ns, () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        _udp.Bind(EndPoint);
        _tcp = LabSockets.Create(ns, ProtocolType.Tcp);
        _tcp.Bind(EndPoint);
        _tcp.Listen(16);
        _udpLoop = Task.Run(UdpLoopAsync);
        _tcpLoop = Task.Run(TcpLoopAsync);
    }

    public IPEndPoint EndPoint { get; }

    private async Task UdpLoopAsync()
    {
        var buffer = new byte[64];
        try
        {
            while (true)
            {
                var received = await _udp.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
                await _udp.SendToAsync(Encoding.ASCII.GetBytes(received.RemoteEndPoint.ToString()!), received.RemoteEndPoint, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && _stop.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    private async Task TcpLoopAsync()
    {
        try
        {
            while (true)
            {
                using var accepted = await _tcp.AcceptAsync(_stop.Token);
                await accepted.SendAsync(Encoding.ASCII.GetBytes(accepted.RemoteEndPoint!.ToString()!), SocketFlags.None, _stop.Token);
                accepted.Shutdown(SocketShutdown.Both);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && _stop.IsCancellationRequested)
        {
            // Disposed.
        }
    }

    /// <summary>Sends one datagram from <paramref name="socket"/> and returns the endpoint the reflector saw it from.</summary>
    public async Task<IPEndPoint> ObserveUdpAsync(Socket socket)
    {
        await socket.SendToAsync(new byte[] { 1 }, EndPoint).WithTimeout();
        var buffer = new byte[64];
        var received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0)).WithTimeout();
        Assert.Equal(EndPoint, received.RemoteEndPoint);
        return IPEndPoint.Parse(Encoding.ASCII.GetString(buffer, 0, received.ReceivedBytes));
    }

    /// <summary>Connects from <paramref name="socket"/> (bound by the caller) and returns the endpoint the reflector saw.</summary>
    public async Task<IPEndPoint> ObserveTcpAsync(Socket socket)
    {
        await socket.ConnectAsync(EndPoint).WithTimeout();
        var buffer = new byte[64];
        var length = 0;
        int n;
        while ((n = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None).WithTimeout()) > 0)
        {
            length += n;
        }

        return IPEndPoint.Parse(Encoding.ASCII.GetString(buffer, 0, length));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _udp.Dispose();
        _tcp.Dispose();
        await Task.WhenAll(_udpLoop, _tcpLoop).WithTimeout();
        _stop.Dispose();
    }
}
