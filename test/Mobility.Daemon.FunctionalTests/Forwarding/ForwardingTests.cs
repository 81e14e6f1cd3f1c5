using System.Buffers.Binary;
using System.Text;
using Mobility.Daemon.Service;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// Unmodified applications through mobilityd: a plain TCP echo server on 127.0.0.1 exposed by daemon
/// B, reached through daemon A's SOCKS5 endpoint by B's GUID, over the mobile transport.
/// </summary>
public sealed class ForwardingTests
{
    [Fact]
    public async Task Ready_line_and_record_carry_the_real_transport_port()
    {
        var gns = new FakeGns();
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        var transport = b.Forwarder.LocalEndPoint;
        Assert.NotEqual(0, transport.Port);
        Assert.Contains($"transport={transport}", b.ReadyLine, StringComparison.Ordinal);
        Assert.Contains($"socks={b.Socks}", b.ReadyLine, StringComparison.Ordinal);
        await TestTimeout.Eventually(() => gns.Get(b.Guid) is not null, "B registered");
        Assert.Contains(gns.Get(b.Guid)!.Locators, l => l.Address.Equals(b.Address) && l.Port == transport.Port);
    }

    [Fact]
    public async Task Socks_connect_to_an_exposed_port_by_guid_echoes_and_passes_the_half_close()
    {
        var gns = new FakeGns();
        await using var stage = await ExposedEcho.StartAsync(() => gns.CreateClient(), server => TestTimeout.Eventually(() => gns.Get(server.Guid) is not null, "B registered"));
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);

        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.Succeeded);
        await SocksTestClient.AssertEchoesAsync(client, 300_000);
    }

    [Fact]
    public async Task Bytes_a_program_already_wrote_leave_with_the_open_header_and_reach_the_exposed_port()
    {
        var gns = new FakeGns();
        using var exposed = new TcpListener(IPAddress.Loopback, 0);
        exposed.Start();
        var port = ((IPEndPoint)exposed.LocalEndpoint).Port;
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(b.Guid) is not null, "B registered");
        b.Api.Expose(port);

        // A program connected to A (as an intercepted one is) has written its request before the mobile connection is open.
        using var programs = new TcpListener(IPAddress.Loopback, 0);
        programs.Start();
        using var program = new TcpClient();
        await program.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)programs.LocalEndpoint).Port).WithTimeout();
        using var programSide = await programs.AcceptSocketAsync().WithTimeout();
        var request = "GET / HTTP/1.0\r\n\r\n"u8.ToArray();
        await program.GetStream().WriteAsync(request).AsTask().WithTimeout();
        await TestTimeout.Eventually(() => programSide.Available == request.Length, "the request waits in A's socket");

        var forwarder = a.Services.GetRequiredService<MobileForwarder>();
        var connection = await forwarder.OpenAsync(b.Guid, (ushort)port, programSide, CancellationToken.None).WithTimeout();
        try
        {
            // Nothing is written after the open: the exposed port still gets the request, which left with the header.
            using var served = await exposed.AcceptSocketAsync().WithTimeout();
            var received = new byte[request.Length];
            await new NetworkStream(served).ReadExactlyAsync(received).AsTask().WithTimeout();
            Assert.Equal(request, received);
            Assert.Equal(0, programSide.Available);
        }
        finally
        {
            await connection.DisposeAsync();
        }
    }

    [Fact]
    public async Task Unexposed_port_is_refused_and_an_exposed_closed_port_is_connection_refused()
    {
        var gns = new FakeGns();
        await using var echo = new EchoServer();
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        await TestTimeout.Eventually(() => gns.Get(b.Guid) is not null, "B registered");

        using (await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.NotAllowed))
        {
        }

        Assert.Equal(0, echo.Accepted);

        var closedPort = Ports.FreeTcp();
        b.Api.Expose(closedPort);
        using (await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", closedPort, expect: Socks5Reply.ConnectionRefused))
        {
        }

        b.Api.Expose(echo.Port);
        b.Api.Unexpose(echo.Port);
        using (await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.NotAllowed))
        {
        }
    }

    [Fact]
    public async Task Unknown_host_and_unsupported_command_get_their_socks_replies()
    {
        var gns = new FakeGns();
        await using var a = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        using (await SocksTestClient.ConnectAsync(a.Socks, "nobody-here", 22, expect: Socks5Reply.HostUnreachable))
        {
        }

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(a.Socks).WithTimeout();
        await client.SendAsync(Socks5Parser.Greeting()).WithTimeout();
        Assert.Equal(new byte[] { 5, 0 }, await SocksTestClient.ReadExactlyAsync(client, 2));
        var bind = Socks5Parser.ConnectRequest(IPAddress.Loopback, 22);
        bind[1] = (byte)Socks5Command.Bind;
        await client.SendAsync(bind).WithTimeout();
        Assert.Equal((byte)Socks5Reply.CommandNotSupported, (await SocksTestClient.ReadExactlyAsync(client, 10))[1]);
    }

    [Fact]
    public async Task Expose_is_refused_over_tcp_and_allowed_to_the_owner_on_the_unix_socket()
    {
        var gns = new FakeGns();
        await using var b = await DaemonInstance.StartForwardingAsync(gns.CreateClient());
        using var tcp = new HttpClient { BaseAddress = b.HttpBase, Timeout = TestTimeout.Default };
        using (var refused = await tcp.PostAsJsonAsync("v1/exposed", new { port = 2222 }).WithTimeout())
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var owner = DaemonInstance.UnixClient(b.SocketPath);
        using (var ok = await owner.PostAsJsonAsync("v1/exposed", new { port = 2222 }).WithTimeout())
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        var listed = await tcp.GetStringAsync("v1/exposed").WithTimeout();
        Assert.Contains("2222", listed, StringComparison.Ordinal);
        using (var removed = await owner.DeleteAsync("v1/exposed/2222").WithTimeout())
        {
            Assert.Equal(HttpStatusCode.OK, removed.StatusCode);
        }

        Assert.Empty(b.Api.ListExposed().Ports);
    }

    [Fact]
    public async Task The_stream_survives_when_the_server_host_moves_mid_stream()
    {
        var gns = new FakeGns();
        await using var stage = await ExposedEcho.StartAsync(() => gns.CreateClient(), server => TestTimeout.Eventually(() => gns.Get(server.Guid) is not null, "B registered"));
        var (echo, b, a) = (stage.Echo, stage.Server, stage.Client);
        using var client = await SocksTestClient.ConnectAsync(a.Socks, $"{b.Guid}.guid", echo.Port, expect: Socks5Reply.Succeeded);
        var reading = SocksTestClient.ReadToEndAsync(client);
        var forwarder = b.Forwarder;
        var before = forwarder.LocalEndPoint;
        var sent = await MidStreamMove.SendWhileServerMovesAsync(client, b, chunks: 40);

        // One mobile connection carried it all, and it moved (resumed at B's new address) rather than reopened.
        // (The resume may finish after the last chunk left on a slow machine: wait for it, do not assume it.)
        var outgoing = Assert.Single(a.Forwarder.OutgoingConnections);
        await TestTimeout.Eventually(() => outgoing.Statistics.Moves >= 1 && forwarder.LocalEndPoint.Equals(outgoing.RemoteEndPoint),
            "the client's connection resumed at B's new address");

        // Both daemons' status lists the connection with the timeline of its move (what `mob status --json` shows).
        var listed = Assert.Single(ApiMapping.ToProto(a.Api.GetStatus()).Connections);
        Assert.Equal(b.Guid.ToString(), listed.Peer);
        Assert.True(listed.Client);
        var clientEvents = listed.Timeline.SelectMany(m => m.Events).Select(e => e.Kind).ToList();
        // The resume rode a flow the client dialled (after B's push) or the one B opened to A's listener (B's call back), whichever came first.
        Assert.True(clientEvents.Contains("ConnectStarted") || clientEvents.Contains("CallBackReceived"), string.Join(' ', clientEvents));
        Assert.Contains("ResumeSent", clientEvents);
        Assert.Contains("ResumeAnswered", clientEvents);
        var incoming = Assert.Single(ApiMapping.ToProto(b.Api.GetStatus()).Connections);
        Assert.False(incoming.Client);
        Assert.Contains(incoming.Timeline.SelectMany(m => m.Events), e => e.Kind == "ResumeAnswered");
        Assert.Empty(ApiMapping.ToProto(a.Api.GetStatus(includeConnections: false)).Connections);

        client.Shutdown(SocketShutdown.Send);
        var echoed = await reading.WithTimeout(TimeSpan.FromSeconds(30));
        Assert.NotEqual(before.Address, forwarder.LocalEndPoint.Address);
        Assert.Equal(sent.Length, echoed.Length);
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(echoed));
        Assert.Equal(1, echo.Accepted);
    }
}
