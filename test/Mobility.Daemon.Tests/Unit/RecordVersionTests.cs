using Microsoft.Extensions.Logging.Abstractions;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Records;
using Mobility.Daemon.Tests.Fakes;

namespace Mobility.Daemon.Tests.Unit;

public sealed class RecordVersionTests
{
    [Fact]
    public void Versions_are_unix_microseconds_and_strictly_increase_even_when_the_clock_steps_back()
    {
        var time = new SteppingClock { Now = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000) };
        var options = Options.Create(new MobilitydOptions { StateDir = Directory.CreateTempSubdirectory("mobilityd-tests-").FullName, Addresses = ["192.0.2.1"] });
        using var identity = new DaemonIdentity(options);
        using var monitor = new AddressMonitor(options, time, NullLogger<AddressMonitor>.Instance);
        using var publisher = new RecordPublisher(options, identity, monitor, new FakeGns().CreateClient(), time, NullLogger<RecordPublisher>.Instance);

        var first = publisher.NextVersion();
        var second = publisher.NextVersion();
        time.Now = time.Now.AddHours(-1);
        var third = publisher.NextVersion();
        time.Now = time.Now.AddHours(2);
        var fourth = publisher.NextVersion();

        Assert.Equal(1_800_000_000_000_000UL, first);
        Assert.Equal(first + 1, second);
        Assert.Equal(second + 1, third);
        Assert.Equal(1_800_003_600_000_000UL, fourth);
    }

    [Fact]
    public void Interface_addresses_skip_loopback_and_link_local_unless_allowed()
    {
        Assert.False(AddressMonitor.Accept(System.Net.IPAddress.Loopback, allowLoopback: false, allowLinkLocal: false));
        Assert.True(AddressMonitor.Accept(System.Net.IPAddress.Loopback, allowLoopback: true, allowLinkLocal: false));
        Assert.False(AddressMonitor.Accept(System.Net.IPAddress.Parse("169.254.1.1"), false, false));
        Assert.False(AddressMonitor.Accept(System.Net.IPAddress.Parse("fe80::1"), false, false));
        Assert.True(AddressMonitor.Accept(System.Net.IPAddress.Parse("fe80::1"), false, true));
        Assert.True(AddressMonitor.Accept(System.Net.IPAddress.Parse("192.0.2.1"), false, false));
        Assert.False(AddressMonitor.Accept(System.Net.IPAddress.Any, true, true));
    }

    /// <summary>A wall clock that can be stepped backwards, as NTP may do.</summary>
    private sealed class SteppingClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; }

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
