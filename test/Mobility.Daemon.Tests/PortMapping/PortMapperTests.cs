using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.PortMapping;
using Mobility.Protocol.PortMapping;

namespace Mobility.Daemon.Tests.PortMapping;

/// <summary>The port mapper's schedule on virtual time, with a scripted gateway in memory (the wire is PortMapClient's and the netlab test's).</summary>
public sealed class PortMapperTests
{
    private static readonly IPEndPoint GatewayEndPoint = new(IPAddress.Parse("192.168.1.1"), PortMappingMessage.ServerPort);
    private static readonly IPAddress Outside = IPAddress.Parse("203.0.113.5");

    [Fact]
    public async Task Both_ports_are_mapped_at_start_and_each_is_renewed_at_half_of_its_granted_lifetime_with_the_same_nonce()
    {
        await using var run = Run.Start(["192.168.1.2"]);
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();
        var state = run.Mapper.State;
        Assert.Equal(GatewayEndPoint, state.Gateway);
        Assert.Equal(new IPEndPoint(Outside, 7391), state.Transport!.External);
        Assert.All(state.Mappings, m => Assert.Equal(start + TimeSpan.FromSeconds(1800), m.RenewAt));

        var requests = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(1800), 4);
        Assert.All(requests.Skip(2), r => Soon(start + TimeSpan.FromSeconds(1800), r.At));
        Assert.Equal(requests[0].Request.Nonce, requests.Skip(2).Single(r => r.Request.Transport == requests[0].Request.Transport).Request.Nonce);
        Assert.All(requests, r => Assert.Equal(TimeSpan.FromHours(2), r.Request.Lifetime));
    }

    [Fact]
    public async Task An_epoch_that_went_back_maps_the_other_port_again_at_once()
    {
        // The control port is granted twice as long: only the transport's renewal is due after 30 minutes. The script is
        // set before the loop starts, or the first two grants may be made under the default lifetime.
        await using var run = Run.Start(["192.168.1.2"], gateway => gateway.Lifetime = r => TimeSpan.FromSeconds(r.Transport == MappedTransport.Tcp ? 3600 : 7200));
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();

        run.Gateway.EpochOffset = -1000; // The gateway restarted: its epoch is far behind what 30 minutes would make it.
        var requests = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(1800), 4);
        Assert.Equal(MappedTransport.Tcp, requests[2].Request.Transport);
        Assert.Equal(MappedTransport.Udp, requests[3].Request.Transport);
        Assert.Equal(requests[2].At, requests[3].At);
        Soon(start + TimeSpan.FromSeconds(1800), requests[3].At);
    }

    [Fact]
    public async Task Without_an_epoch_reset_the_other_port_waits_for_its_own_renewal()
    {
        await using var run = Run.Start(["192.168.1.2"], gateway => gateway.Lifetime = r => TimeSpan.FromSeconds(r.Transport == MappedTransport.Tcp ? 3600 : 7200));
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();

        var renewed = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(1800), 3);
        Assert.Equal(MappedTransport.Tcp, renewed[2].Request.Transport);
        Soon(start + TimeSpan.FromSeconds(1800), renewed[2].At);
        var requests = await run.AdvanceUntilAsync(start + TimeSpan.FromSeconds(3600) - run.Time.GetUtcNow(), 5);
        var udp = Assert.Single(requests.Skip(3), r => r.Request.Transport == MappedTransport.Udp);
        Soon(start + TimeSpan.FromSeconds(3600), udp.At);
    }

    [Fact]
    public async Task A_move_maps_again_with_new_nonces()
    {
        await using var run = Run.Start(["192.168.1.2"]);
        var first = await run.RequestsAsync(2);

        var movedAt = run.Time.GetUtcNow();
        run.Monitor.SetFixed([IPAddress.Parse("192.168.1.77")]);
        var requests = await run.RequestsAsync(4);
        Assert.Equal(movedAt, requests[3].At);
        Assert.DoesNotContain(requests.Skip(2), r => first.Any(f => f.Request.Nonce == r.Request.Nonce));
    }

    [Fact]
    public async Task A_failed_request_is_asked_again_after_30_s_then_after_twice_as_long()
    {
        await using var run = Run.Start(["192.168.1.2"], gateway => gateway.Fail = true);
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();
        await TestTimeout.Eventually(() => run.Mapper.State.Error is not null, "the failure in the state");
        Assert.Empty(run.Mapper.State.Mappings);

        var retried = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(30), 4);
        Soon(start.AddSeconds(30), retried[2].At);
        var requests = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(60), 6);
        // The second retry comes 60 s after the first one, not earlier.
        Assert.InRange(requests[4].At - retried[2].At, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(61));
    }

    [Fact]
    public async Task Stopping_deletes_every_mapping_with_lifetime_zero()
    {
        var run = Run.Start(["192.168.1.2"]);
        await run.RequestsAsync(2);
        await run.DisposeAsync();

        var requests = run.Gateway.Requests;
        Assert.Equal(4, requests.Count);
        Assert.All(requests.Skip(2), r => Assert.Equal(TimeSpan.Zero, r.Request.Lifetime));
        Assert.Equal(PortMappingProtocol.Pcp, requests[3].Request.Protocol);
        Assert.Empty(run.Mapper.State.Mappings);
    }

    [Fact]
    public async Task A_permanent_upnp_lease_is_renewed_at_half_of_the_lifetime_asked_for_and_by_the_external_port_granted()
    {
        // An IGD v2 gateway gave other external ports (AddAnyPortMapping) and a lease of 0: permanent.
        await using var run = Run.Start(["192.168.1.2"], gateway =>
        {
            gateway.Protocol = PortMappingProtocol.Upnp;
            gateway.Lifetime = _ => TimeSpan.Zero;
            gateway.ExternalPort = r => (ushort)(r.InternalPort + 30000);
        });
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();
        Assert.All(run.Mapper.State.Mappings, m => Assert.Equal(("upnp", start + TimeSpan.FromHours(1)), (m.ProtocolName, m.RenewAt)));
        Assert.Equal(new IPEndPoint(Outside, 37391), run.Mapper.State.Transport!.External);

        var requests = await run.AdvanceUntilAsync(TimeSpan.FromHours(1), 4);
        Assert.All(requests.Skip(2), r =>
        {
            Soon(start + TimeSpan.FromHours(1), r.At);
            Assert.Equal(PortMappingProtocol.Upnp, r.Request.Protocol);
            Assert.Equal(new IPEndPoint(Outside, r.Request.InternalPort + 30000), r.Request.External);
        });
    }

    [Fact]
    public async Task A_upnp_grant_has_no_epoch_so_the_other_port_waits_for_its_own_renewal()
    {
        // UPnP answers carry no epoch (the gateway reports 0 each time): that is no sign of a restart.
        await using var run = Run.Start(["192.168.1.2"], gateway =>
        {
            gateway.Protocol = PortMappingProtocol.Upnp;
            gateway.Lifetime = r => TimeSpan.FromSeconds(r.Transport == MappedTransport.Tcp ? 3600 : 7200);
        });
        await run.RequestsAsync(2);
        var start = run.Time.GetUtcNow();

        var renewed = await run.AdvanceUntilAsync(TimeSpan.FromSeconds(1800), 3);
        Assert.Equal(MappedTransport.Tcp, renewed[2].Request.Transport);
        var requests = await run.AdvanceUntilAsync(start + TimeSpan.FromSeconds(3600) - run.Time.GetUtcNow(), 5);
        var udp = Assert.Single(requests.Skip(2), r => r.Request.Transport == MappedTransport.Udp);
        Soon(start + TimeSpan.FromSeconds(3600), udp.At);
    }

    [Fact]
    public async Task Stopping_deletes_a_upnp_mapping_by_its_external_port()
    {
        var run = Run.Start(["192.168.1.2"], gateway =>
        {
            gateway.Protocol = PortMappingProtocol.Upnp;
            gateway.ExternalPort = r => (ushort)(r.InternalPort + 1);
        });
        await run.RequestsAsync(2);
        await run.DisposeAsync();

        var deletes = run.Gateway.Requests.Skip(2).ToList();
        Assert.Equal(2, deletes.Count);
        Assert.All(deletes, r => Assert.Equal((TimeSpan.Zero, PortMappingProtocol.Upnp, new IPEndPoint(Outside, r.Request.InternalPort + 1)),
            (r.Request.Lifetime, r.Request.Protocol!.Value, r.Request.External)));
    }

    [Fact]
    public async Task A_host_without_a_private_address_asks_nothing()
    {
        await using var run = Run.Start(["192.0.2.10", "2001:db8::10"]);
        await TestTimeout.Eventually(() => run.Mapper.State.Error is not null, "the state");
        Assert.Contains("no private IPv4 address", run.Mapper.State.Error, StringComparison.Ordinal);
        Assert.Empty(run.Gateway.Requests);
    }

    [Fact]
    public async Task Port_mapping_off_asks_nothing_and_says_so()
    {
        await using var run = Run.Start(["192.168.1.2"], configure: o => o.Nat.PortMapping = false);
        await TestTimeout.Eventually(() => run.Mapper.State.Error is not null, "the state");
        Assert.Equal("off (Nat:PortMapping is false)", run.Mapper.State.Error);
        Assert.Empty(run.Gateway.Requests);
    }

    [Theory]
    [InlineData(1000u, 0, 1000u, false)]     // no time passed
    [InlineData(1000u, 3600, 4600u, false)]  // exactly as expected
    [InlineData(1000u, 3600, 4150u, false)]  // the gateway's clock runs 1/8 slow: allowed
    [InlineData(1000u, 3600, 4000u, true)]   // further behind than 7/8 of our elapsed time less 2 s
    [InlineData(1000u, 0, 997u, true)]       // went back
    [InlineData(1000u, 0, 999u, false)]      // within the 2 s slack
    public void Epoch_reset_follows_rfc_6887_section_8_5(uint previous, int elapsedSeconds, uint epoch, bool reset)
    {
        var at = DateTimeOffset.UnixEpoch;
        Assert.Equal(reset, PortMapper.EpochReset(previous, at, epoch, at.AddSeconds(elapsedSeconds)));
    }

    [Theory]
    [InlineData("10.1.2.3", true)]
    [InlineData("172.16.0.1", true)]
    [InlineData("172.32.0.1", false)]
    [InlineData("192.168.0.9", true)]
    [InlineData("100.64.1.1", true)]
    [InlineData("100.128.1.1", false)]
    [InlineData("198.18.1.2", false)]
    [InlineData("127.0.0.1", false)]
    [InlineData("fd00::1", false)]
    public void Private_ipv4_addresses_are_the_sign_of_a_nat(string address, bool isPrivate) =>
        Assert.Equal(isPrivate, PortMapper.IsPrivate(IPAddress.Parse(address)));

    [Theory]
    [InlineData("auto", null)]
    [InlineData("192.168.1.1", "192.168.1.1:5351")]
    [InlineData("127.0.0.1:15351", "127.0.0.1:15351")]
    public void The_gateway_option_is_auto_ip_or_ip_and_port(string text, string? expected)
    {
        Assert.True(PortMapper.TryParseGateway(text, out var gateway));
        Assert.Equal(expected, gateway?.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("router")]
    [InlineData("fe80::1")]
    [InlineData("192.168.1.1:0")]
    public void A_bad_gateway_option_is_refused(string text) => Assert.False(PortMapper.TryParseGateway(text, out _));

    /// <summary>At <paramref name="expected"/>, or up to a second after it when virtual time had to creep on (never before).</summary>
    private static void Soon(DateTimeOffset expected, DateTimeOffset at) => Assert.InRange(at, expected, expected + TimeSpan.FromSeconds(1));

    /// <summary>A gateway that grants every request (or fails them all), recording each with the virtual time it came at.</summary>
    private sealed class ScriptedGateway(TimeProvider time) : IPortMapGateway
    {
        private readonly DateTimeOffset _boot = time.GetUtcNow().AddSeconds(-5000);
        private readonly List<(MappingRequest Request, DateTimeOffset At)> _requests = [];

        public bool Fail { get; set; }

        public Func<MappingRequest, TimeSpan> Lifetime { get; set; } = _ => TimeSpan.FromSeconds(3600);

        public int EpochOffset { get; set; }

        public PortMappingProtocol Protocol { get; set; } = PortMappingProtocol.Pcp;

        public Func<MappingRequest, ushort> ExternalPort { get; set; } = r => r.InternalPort;

        public List<(MappingRequest Request, DateTimeOffset At)> Requests
        {
            get
            {
                lock (_requests)
                {
                    return [.. _requests];
                }
            }
        }

        public Task<GatewayMapping> MapAsync(MappingRequest request, CancellationToken cancellationToken)
        {
            lock (_requests)
            {
                _requests.Add((request, time.GetUtcNow()));
            }

            if (Fail)
            {
                throw new PortMappingException("no PCP or NAT-PMP answer from the script");
            }

            var epoch = Protocol == PortMappingProtocol.Upnp ? 0 : (uint)((time.GetUtcNow() - _boot).TotalSeconds + EpochOffset);
            return Task.FromResult(new GatewayMapping(Protocol, new IPEndPoint(Outside, ExternalPort(request)), Lifetime(request), epoch));
        }
    }

    private sealed class Run : IAsyncDisposable
    {
        private Run(FakeTimeProvider time, AddressMonitor monitor, ScriptedGateway gateway, PortMapper mapper)
        {
            Time = time;
            Monitor = monitor;
            Gateway = gateway;
            Mapper = mapper;
        }

        public FakeTimeProvider Time { get; }

        public AddressMonitor Monitor { get; }

        public ScriptedGateway Gateway { get; }

        public PortMapper Mapper { get; }

        public static Run Start(string[] addresses, Action<ScriptedGateway>? script = null, Action<MobilitydOptions>? configure = null)
        {
            var options = Options.Create(new MobilitydOptions { StateDir = Path.GetTempPath(), Addresses = addresses });
            options.Value.AddressWatch.Debounce = TimeSpan.Zero;
            configure?.Invoke(options.Value);
            var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-06T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
            var monitor = new AddressMonitor(options, time, NullLogger<AddressMonitor>.Instance);
            var gateway = new ScriptedGateway(time);
            script?.Invoke(gateway);
            var mapper = new PortMapper(options, monitor, time, NullLogger<PortMapper>.Instance, gateway, () => GatewayEndPoint);
            mapper.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
            return new Run(time, monitor, gateway, mapper);
        }

        /// <summary>
        /// Moves virtual time on by <paramref name="by"/> and waits for <paramref name="count"/> requests. On a loaded machine
        /// the loop may set its timer a moment after the advance (so it fires that much later): time then creeps on in 10 ms
        /// steps until the request comes, which <see cref="Soon"/> allows for.
        /// </summary>
        public async Task<List<(MappingRequest Request, DateTimeOffset At)>> AdvanceUntilAsync(TimeSpan by, int count)
        {
            Time.Advance(by);
            await TestTimeout.Eventually(() =>
            {
                if (Gateway.Requests.Count >= count)
                {
                    return true;
                }

                Time.Advance(TimeSpan.FromMilliseconds(10));
                return false;
            }, $"{count} requests at the gateway");
            var requests = Gateway.Requests;
            Assert.Equal(count, requests.Count);
            return requests;
        }

        /// <summary>
        /// Waits until the gateway has seen <paramref name="count"/> requests and the mapper has published what they granted
        /// (its loop is then past its work and about to set its timer: virtual time advanced before that would be waited
        /// again in full), and returns them in order.
        /// </summary>
        public async Task<List<(MappingRequest Request, DateTimeOffset At)>> RequestsAsync(int count)
        {
            await TestTimeout.Eventually(() => Gateway.Requests.Count >= count, $"{count} requests at the gateway");
            await TestTimeout.Eventually(() => Mapper.State.Error is not null || Mapper.State.Mappings.Length >= Math.Min(count, 2), "the mapper's state published");
            var requests = Gateway.Requests;
            Assert.Equal(count, requests.Count);
            return requests;
        }

        public async ValueTask DisposeAsync()
        {
            await Mapper.StopAsync(CancellationToken.None).WithTimeout();
            Mapper.Dispose();
            Monitor.Dispose();
        }
    }
}
