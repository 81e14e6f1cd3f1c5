using Microsoft.Extensions.Logging.Abstractions;
using Mobility.Daemon.Inbound;
using Mobility.Daemon.Transparent;

namespace Mobility.Daemon.FunctionalTests.Forwarding;

/// <summary>
/// Inbound delivery when IP_TRANSPARENT is not permitted (a daemon without CAP_NET_ADMIN): the kernel's refusal
/// is played by the socket option setter, the rest is real loopback sockets. Delivery falls back to 127.0.0.1
/// with one warning, and nothing is installed (no routes, no marker). The virtual source itself is tested in
/// namespaces (Mobility.Netlab.FunctionalTests, InboundTests).
/// </summary>
public sealed class InboundFallbackTests : IDisposable
{
    private static readonly HostGuid Peer = HostGuid.Parse("0123456789abcdef0123456789abcdef01234567");
    private readonly string _stateDir = Directory.CreateTempSubdirectory("inbound-").FullName;
    private readonly RecordingLogger<InboundDelivery> _logger = new();

    public void Dispose() => Directory.Delete(_stateDir, recursive: true);

    private InboundDelivery Create()
    {
        var options = Microsoft.Extensions.Options.Options.Create(new MobilitydOptions { StateDir = _stateDir });
        var map = new VirtualAddressMap(options, TimeProvider.System, NullLogger<VirtualAddressMap>.Instance);
        var mark = new SocketMark(options, NullLogger<SocketMark>.Instance);
        return new InboundDelivery(options, map, mark, _logger,
            _ => throw new SocketException((int)SocketError.AccessDenied));
    }

    /// <summary>A TCP socket listening on 127.0.0.1, a port the kernel picks.</summary>
    private static Socket Listener(out ushort port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        port = (ushort)((IPEndPoint)listener.LocalEndPoint!).Port;
        return listener;
    }

    [Fact]
    public async Task Without_permission_a_virtual_source_delivers_from_127_0_0_1_with_one_warning_and_installs_nothing()
    {
        var delivery = Create();
        using var listener = Listener(out var port);

        for (var i = 0; i < 2; i++)
        {
            using var socket = await delivery.ConnectAsync(Peer, port, InboundSource.Virtual, CancellationToken.None).WithTimeout();
            using var accepted = await listener.AcceptAsync().WithTimeout();
            Assert.Equal(IPAddress.Loopback, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
        }

        using (var udp = await delivery.OpenUdpAsync(Peer, port, InboundSource.Virtual, CancellationToken.None).WithTimeout())
        {
            Assert.Equal(IPAddress.Loopback, ((IPEndPoint)udp.LocalEndPoint!).Address);
            Assert.Equal(new IPEndPoint(IPAddress.Loopback, port), udp.RemoteEndPoint);
        }

        var warnings = _logger.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).ToList();
        Assert.Equal(8800, Assert.Single(warnings).Id.Id);
        Assert.False(File.Exists(Path.Combine(_stateDir, InboundDelivery.MarkerFile)));
        await delivery.StopAsync(CancellationToken.None).WithTimeout();
    }

    [Fact]
    public async Task A_local_source_never_asks_for_the_permission()
    {
        var delivery = Create();
        using var listener = Listener(out var port);

        // Auto with transparent mode off (nothing marked) is local too.
        foreach (var source in new[] { InboundSource.Local, InboundSource.Auto })
        {
            using var socket = await delivery.ConnectAsync(Peer, port, source, CancellationToken.None).WithTimeout();
            using var accepted = await listener.AcceptAsync().WithTimeout();
            Assert.Equal(IPAddress.Loopback, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
        }

        _logger.AssertNoWarningsOrErrors();
    }

    [Fact]
    public async Task A_port_nobody_listens_on_is_refused_with_a_socket_error()
    {
        var delivery = Create();
        // Bound but not listening: the port stays ours, and a connection to it is refused.
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = (ushort)((IPEndPoint)holder.LocalEndPoint!).Port;

        var e = await Assert.ThrowsAsync<SocketException>(() => delivery.ConnectAsync(Peer, port, InboundSource.Virtual, CancellationToken.None)).WithTimeout();
        Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
    }
}
