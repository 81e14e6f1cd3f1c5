using System.Buffers.Binary;
using Mobility.Daemon.Forwarding;
using Mobility.Transport;

namespace Mobility.Cli.FunctionalTests;

public sealed partial class ForwardCommandTests
{
    [Fact]
    public async Task Mob_forward_udp_reaches_an_exposed_udp_echo_before_and_after_each_end_moves()
    {
        await using var stage = await UdpStage.StartAsync();
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);

        var port = echo.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var exposed = await Mob(default, "expose", port, "--udp", "--socket", b.SocketPath);
        Assert.Equal((0, $"{port}/udp\n"), (exposed.Exit, exposed.Out));

        using var cts = new CancellationTokenSource(TestTimeout.Default * 4);
        using var forwardOut = new StringWriter();
        var forward = Invoke(cts.Token, forwardOut, "forward", "0", $"{b.Guid}:{port}", "--udp", "--socket", a.SocketPath);
        await TestTimeout.Eventually(() => forwardOut.ToString().Contains(" to ", StringComparison.Ordinal), "mob forward --udp listens");
        var local = IPEndPoint.Parse(forwardOut.ToString().Split(' ')[2]);
        Assert.Single(a.Api.ListUdpForwards());

        using var app = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        app.Connect(local);
        await AssertEchoesAsync(app, 0);

        var serverMoved = DaemonInstance.NewAddress();
        await b.Api.SetAddressesAsync([serverMoved]).WithTimeout();
        await TestTimeout.Eventually(() => b.Forwarder.LocalEndPoint.Address.Equals(serverMoved), "the server's transport moved");
        await AssertEchoesAsync(app, 1);

        var clientMoved = DaemonInstance.NewAddress();
        await a.Api.SetAddressesAsync([clientMoved]).WithTimeout();
        await TestTimeout.Eventually(() => a.Forwarder.LocalEndPoint.Address.Equals(clientMoved), "the client's transport moved");
        await AssertEchoesAsync(app, 2);

        // One session carried it all: the same mobile connection, the same UDP source at the echo server.
        var connection = Assert.Single(a.Forwarder.OutgoingConnections);
        Assert.True(connection.Statistics.Moves >= 2, $"{connection.Statistics.Moves} moves");
        Assert.True(connection.Statistics.Datagrams.Received >= 3);
        Assert.Equal(1, echo.Sources);

        await cts.CancelAsync();
        Assert.Equal(ExitCodes.Interrupted, await forward.WithTimeout());
        Assert.Empty(a.Api.ListUdpForwards());
        await TestTimeout.Eventually(() => a.Forwarder.OutgoingConnections.Count == 0 && b.Forwarder.IncomingConnections.Count == 0,
            "the session's connection closed at both ends");
    }

    [Fact]
    public async Task A_udp_session_to_a_port_exposed_only_for_tcp_is_refused_like_an_unexposed_one()
    {
        await using var stage = await UdpStage.StartAsync();
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);
        b.Api.Expose(echo.Port);

        var refused = await Assert.ThrowsAsync<OpenRefusedException>(() => a.Forwarder.OpenAsync(b.Guid, (ushort)echo.Port, udp: true, CancellationToken.None)).WithTimeout();
        Assert.Equal(Mobility.Protocol.Forwarding.OpenStatus.NotExposed, refused.Status);

        await b.Api.ExposeAsync(echo.Port, [], udp: true).WithTimeout();
        await using var session = await a.Forwarder.OpenAsync(b.Guid, (ushort)echo.Port, udp: true, CancellationToken.None).WithTimeout();
        Assert.True(session.SendDatagram("ping"u8));
        var buffer = new byte[16];
        Assert.Equal(4, await session.ReceiveDatagramAsync(buffer).AsTask().WithTimeout());

        // The stream carries nothing after the UDP open header: a byte on it ends the session.
        await session.WriteAsync(new byte[] { 1 }).AsTask().WithTimeout();
        await TestTimeout.Eventually(() => session.State == MobileConnectionState.Failed, "the server reset the session");
    }

    [Fact]
    public async Task An_idle_udp_session_ends_at_both_ends_and_the_next_datagram_opens_a_new_one()
    {
        await using var stage = await UdpStage.StartAsync("--Forwarding:UdpIdleTimeout", "00:00:02");
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);
        await b.Api.ExposeAsync(echo.Port, [], udp: true).WithTimeout();
        var (started, _) = await a.Api.StartUdpForwardAsync(0, b.Guid.ToString(), echo.Port).WithTimeout();

        using var app = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        app.Connect(started.Local);
        await AssertEchoesAsync(app, 0);
        await TestTimeout.Eventually(() => a.Forwarder.OutgoingConnections.Count == 0 && b.Forwarder.IncomingConnections.Count == 0
            && a.Api.ListUdpForwards()[0].Sessions == 0, "the idle session closed at both ends");

        // The server's next session sends from a new UDP socket: the echo sees one more source.
        var sources = echo.Sources;
        await AssertEchoesAsync(app, 1);
        Assert.True(echo.Sources > sources, $"{echo.Sources} sources after a new session, {sources} before");
        Assert.Equal(started.Local, a.Api.StopUdpForward(started.Local.Port) is { IsEmpty: true } ? started.Local : null);
    }

    /// <summary>Sends datagrams tagged with <paramref name="round"/> until one comes back (a datagram sent into a path that is being replaced is lost, not resent).</summary>
    private static async Task AssertEchoesAsync(Socket app, int round)
    {
        var payload = new byte[1200];
        var buffer = new byte[2048];
        for (var attempt = 0; attempt < 300; attempt++)
        {
            BinaryPrimitives.WriteInt32BigEndian(payload, round);
            BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), attempt);
            await app.SendAsync(payload).WithTimeout();
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
            try
            {
                while (true)
                {
                    var length = await app.ReceiveAsync(buffer, SocketFlags.None, wait.Token);
                    if (length == payload.Length && BinaryPrimitives.ReadInt32BigEndian(buffer) == round)
                    {
                        Assert.Equal(payload.AsSpan(8).ToArray(), buffer.AsSpan(8, payload.Length - 8).ToArray());
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        Assert.Fail($"no echo in round {round}");
    }

    /// <summary>A UDP echo on 127.0.0.1, daemon B that may expose it and daemon A that reaches B (both with <paramref name="extraArgs"/>), registered in one fake GNS.</summary>
    private sealed class UdpStage(UdpEchoServer echo, DaemonInstance server, DaemonInstance client) : IAsyncDisposable
    {
        public UdpEchoServer Echo => echo;

        public DaemonInstance Server => server;

        public DaemonInstance Client => client;

        public static async Task<UdpStage> StartAsync(params string[] extraArgs)
        {
            var gns = new FakeGns();
            var server = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), extraArgs);
            var client = await DaemonInstance.StartForwardingAsync(gns.CreateClient(), extraArgs);
            var stage = new UdpStage(new UdpEchoServer(), server, client);
            await TestTimeout.Eventually(() => gns.Get(server.Guid) is not null, "B registered");
            return stage;
        }

        public async ValueTask DisposeAsync()
        {
            await client.DisposeAsync();
            await server.DisposeAsync();
            await echo.DisposeAsync();
        }
    }
}
