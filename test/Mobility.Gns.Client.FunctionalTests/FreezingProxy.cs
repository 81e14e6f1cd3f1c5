namespace Mobility.Gns.Client.FunctionalTests;

/// <summary>
/// A loopback TCP relay in front of a server. <see cref="FreezeExisting"/> makes the connections
/// relayed so far go silent without closing (bytes are read and dropped in both directions), which
/// is what a TCP connection whose local address vanished looks like: no RST, no FIN, nothing.
/// Connections opened afterwards are relayed normally.
/// </summary>
internal sealed class FreezingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<(Socket Client, Socket Server, Task Pump)> _relays = [];
    private readonly Lock _gate = new();
    private readonly Task _acceptLoop;
    private int _frozenUpTo;

    public FreezingProxy(IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _acceptLoop = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections accepted so far.</summary>
    public int Accepted
    {
        get
        {
            lock (_gate)
            {
                return _relays.Count;
            }
        }
    }

    public void FreezeExisting()
    {
        lock (_gate)
        {
            _frozenUpTo = _relays.Count;
        }
    }

    private bool IsFrozen(int index)
    {
        lock (_gate)
        {
            return index < _frozenUpTo;
        }
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stopping.Token);
                var server = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await server.ConnectAsync(_target, _stopping.Token);
                lock (_gate)
                {
                    var index = _relays.Count;
                    _relays.Add((client, server, Task.WhenAll(PumpAsync(client, server, index), PumpAsync(server, client, index))));
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to, int index)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, _stopping.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (!IsFrozen(index))
                {
                    await to.SendAsync(buffer.AsMemory(0, read), _stopping.Token);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        await _acceptLoop;
        (Socket Client, Socket Server, Task Pump)[] relays;
        lock (_gate)
        {
            relays = [.. _relays];
        }

        foreach (var (client, server, _) in relays)
        {
            client.Dispose();
            server.Dispose();
        }

        await Task.WhenAll(relays.Select(r => r.Pump));
        _stopping.Dispose();
    }
}
