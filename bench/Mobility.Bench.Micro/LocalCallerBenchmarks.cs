using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Mobility.Daemon.Access;

namespace Mobility.Bench.Micro;

/// <summary>
/// Who opened a loopback TCP connection (mobilityd asks for every connection to its local API over TCP and for
/// every connection transparent mode intercepts): sock_diag's exact lookup against reading /proc/net/tcp and tcp6
/// whole, with <see cref="Connections"/> other connections open in the namespace (each is two sockets, so two rows).
/// Linux only.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class LocalCallerBenchmarks
{
    private readonly List<Socket> _sockets = [];
    private IPEndPoint _client = null!;
    private IPEndPoint _server = null!;

    [Params(100, 2000)]
    public int Connections { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(listener);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4096);
        for (var i = 0; i < Connections; i++)
        {
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _sockets.Add(client);
            client.Connect(listener.LocalEndPoint!);
            var accepted = listener.Accept();
            _sockets.Add(accepted);
            // The one asked about is in the middle of the table.
            if (i == Connections / 2)
            {
                (_client, _server) = ((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
            }
        }

        if (TcpSocketTable.FindOwner(_client, _server) != TcpSocketTable.FindOwnerInTables(_client, _server))
        {
            throw new InvalidOperationException("The two ways disagree.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        _sockets.Clear();
    }

    [Benchmark(Baseline = true, Description = "/proc/net/tcp read whole")]
    public uint? SocketTable() => TcpSocketTable.FindOwnerInTables(_client, _server);

    [Benchmark(Description = "sock_diag exact lookup")]
    public uint? SockDiag() => TcpSocketTable.FindOwner(_client, _server);
}
