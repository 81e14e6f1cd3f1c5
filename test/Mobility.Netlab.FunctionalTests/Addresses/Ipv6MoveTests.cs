using System.Net;
using System.Net.Sockets;
using Mobility.Daemon.Client;
using Mobility.Net.Socks5;
using Mobility.Netlab.FunctionalTests.Infrastructure;
using Mobility.Netlab.Soak;
using Mobility.Netlab.Systems;
using Mobility.Netlab.Systems.Mobility;
using Mobility.Netlab.Topology;

namespace Mobility.Netlab.FunctionalTests.Addresses;

/// <summary>
/// IPv6-only hosts (<see cref="Ipv6Lab"/>): real gns and mobilityd processes (<c>--transport [::]:7391</c>), an echo
/// application exposed by the server's daemon, a checked stream through the client daemon's SOCKS5 endpoint, then a
/// move to a new prefix; every byte must come back once and in order. Correctness only; speed is not asserted.
/// </summary>
[Collection(NetlabCollection.Name)]
public sealed class Ipv6MoveTests
{
    private const ushort EchoPort = 5201;

    /// <summary>Bytes echoed before and again after each move: a few hundred KiB, enough to be in flight across it.</summary>
    private const int Chunk = 256 * 1024;

    private enum Mover
    {
        Client,
        Server,
        Both,
    }

    [NetlabFact]
    public Task Ipv6_only_hosts_survive_a_client_move_to_a_new_prefix_without_losing_bytes() => MoveAsync(Mover.Client);

    [NetlabFact]
    public Task Ipv6_only_hosts_survive_a_server_move_to_a_new_prefix_without_losing_bytes() => MoveAsync(Mover.Server);

    [NetlabFact]
    public Task Ipv6_only_hosts_survive_both_moving_at_once_without_losing_bytes() => MoveAsync(Mover.Both);

    private static async Task MoveAsync(Mover mover)
    {
        await using var run = await Ipv6Run.StartAsync().WithTimeout(NetlabTimeouts.Step * 2);
        await run.EchoAsync(Chunk).WithTimeout(NetlabTimeouts.Step);

        var moves = new List<Task>();
        if (mover is Mover.Client or Mover.Both)
        {
            moves.Add(run.Lab.Client.MoveAsync(run.Lab.Client.Interfaces[0], run.Lab.Client.Interfaces[1]));
        }

        if (mover is Mover.Server or Mover.Both)
        {
            moves.Add(run.Lab.Server.MoveAsync(run.Lab.Server.Interfaces[0], run.Lab.Server.Interfaces[1]));
        }

        await Task.WhenAll(moves).WithTimeout(NetlabTimeouts.Step);
        await run.EchoAsync(Chunk).WithTimeout(NetlabTimeouts.Step);
        run.AssertIntact();
    }

    [NetlabFact]
    public async Task A_privacy_rotation_on_the_server_is_survived()
    {
        await using var run = await Ipv6Run.StartAsync().WithTimeout(NetlabTimeouts.Step * 2);
        await run.EchoAsync(Chunk).WithTimeout(NetlabTimeouts.Step);

        // A new temporary address; the old one deprecated (still valid), traffic, then the old one deleted.
        var server = run.Lab.Server;
        var old = server.Interfaces[0].Address;
        var temporary = server.Interfaces[1].Address;
        await Ip.BatchAsync(server.Namespace, [$"addr add {temporary}/64 dev e1", $"addr change {old}/64 dev e1 preferred_lft 0"]).WithTimeout(NetlabTimeouts.Step);
        await run.EchoAsync(Chunk).WithTimeout(NetlabTimeouts.Step);
        await Ip.BatchAsync(server.Namespace, [$"addr del {old}/64 dev e1"]).WithTimeout(NetlabTimeouts.Step);
        await run.EchoAsync(Chunk).WithTimeout(NetlabTimeouts.Step);

        run.AssertIntact();
        using var api = new DaemonClient(run.Client.ApiSocket, TimeSpan.FromSeconds(10));
        await TestTimeout.Eventually(async () => await api.GetIpAddressesAsync(run.Server.Guid, CancellationToken.None) is [var only] && only == temporary.ToString(),
            "the server's record to hold only the temporary address", NetlabTimeouts.Step);
    }

    /// <summary>gns, the two daemons, the exposed echo server and one connection through SOCKS5, checked both ways.</summary>
    private sealed class Ipv6Run(Ipv6Lab lab, DaemonProcess client, DaemonProcess server, Socket listener, Task echo, NetworkStream stream) : IAsyncDisposable
    {
        private const ulong Seed = 0x6d6f62696c697479;

        private readonly StreamChecker _checker = new(Seed);
        private long _sent;

        public Ipv6Lab Lab { get; } = lab;

        public DaemonProcess Client { get; } = client;

        public DaemonProcess Server { get; } = server;

        public static async Task<Ipv6Run> StartAsync()
        {
            var lab = await Ipv6Lab.CreateAsync();
            try
            {
                var root = lab.Lab.CreateTemporaryDirectory("ipv6");
                var gns = await Mobility.Netlab.Systems.Mobility.GnsProcess.StartAsync(lab.Lab, lab.Gns, Path.Combine(root, "gns"), CancellationToken.None);
                string[] transport = ["--transport", "[::]:7391"];
                var server = await DaemonProcess.StartAsync(lab.Lab, lab.Server, Path.Combine(root, "server"), gns, socks: false, CancellationToken.None, transport);
                var client = await DaemonProcess.StartAsync(lab.Lab, lab.Client, Path.Combine(root, "client"), gns, socks: true, CancellationToken.None, transport);

                var listener = LabSockets.Create(lab.Server.Namespace, ProtocolType.Tcp);
                listener.Bind(new IPEndPoint(IPAddress.Loopback, EchoPort));
                listener.Listen(4);
                var echo = EchoAsync(listener);
                await MobilitySystem.ExposeAsync(server, EchoPort, CancellationToken.None);

                using (var api = new DaemonClient(client.ApiSocket, TimeSpan.FromSeconds(10)))
                {
                    var address = lab.Server.PrimaryAddress.ToString();
                    await TestTimeout.Eventually(async () => (await api.GetIpAddressesAsync(server.Guid, CancellationToken.None)).Contains(address),
                        "the server's IPv6 record in the GNS", NetlabTimeouts.Step);
                }

                var socket = await Socks5Client.OpenAsync(client.Socks!, server.Guid + ".guid", EchoPort, CancellationToken.None,
                    _ => LabSockets.Create(lab.Client.Namespace, ProtocolType.Tcp));
                Assert.True(await client.WaitForWatchAsync(NetlabTimeouts.Step, CancellationToken.None), "the client daemon's GNS watch never connected");
                return new Ipv6Run(lab, client, server, listener, echo, new NetworkStream(socket, ownsSocket: true));
            }
            catch
            {
                await lab.DisposeAsync();
                throw;
            }
        }

        /// <summary>Sends <paramref name="bytes"/> more of the checked stream and reads its echo back.</summary>
        public async Task EchoAsync(int bytes)
        {
            var data = new byte[bytes];
            CheckedStream.Fill(data, Seed, (ulong)(_sent / CheckedStream.BlockSize));
            var write = stream.WriteAsync(data).AsTask();
            var buffer = new byte[64 * 1024];
            var received = 0;
            while (received < bytes)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, bytes - received)));
                Assert.True(n > 0, $"the connection ended after {_checker.Received} bytes: {Client.Describe(0)}; {Server.Describe(0)}");
                _checker.Add(buffer.AsSpan(0, n));
                received += n;
            }

            await write;
            _sent += bytes;
        }

        public void AssertIntact()
        {
            _checker.Finish(_sent);
            Assert.Equal(_sent, _checker.Received);
            Assert.Equal(0, _checker.Lost);
            Assert.Equal(0, _checker.Duplicated);
            Assert.Equal(0, _checker.Corrupt);
        }

        public async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync();
            listener.Dispose();
            await Lab.DisposeAsync();
            await Task.WhenAny(echo, Task.Delay(TestTimeout.Default));
        }

        /// <summary>The server application: echoes every connection until it ends (stops when the listener is closed).</summary>
        private static async Task EchoAsync(Socket listener)
        {
            try
            {
                while (true)
                {
                    var accepted = await listener.AcceptAsync();
                    _ = Task.Run(async () =>
                    {
                        await using var stream = new NetworkStream(accepted, ownsSocket: true);
                        try
                        {
                            await stream.CopyToAsync(stream);
                        }
                        catch (IOException)
                        {
                        }
                    });
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }
}
