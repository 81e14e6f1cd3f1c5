using System.Net;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>
/// How soon an address change leaves for the GNS: on the address monitor's own thread, before anything else the change
/// woke gets the thread pool (in the netlab's simultaneous moves the update left 16-56 ms after the address event while
/// the pool served the transport, NAT discovery and the GNS client's new connection; the peer's lookup or call back waits
/// for it). Only an update with no address waits for <c>AddressWatch:Debounce</c>.
/// </summary>
public sealed class PublishLatencyTests
{
    [Fact]
    public async Task A_change_that_leaves_an_address_is_sent_before_the_address_monitor_returns_whatever_the_debounce()
    {
        await using var host = ObservedLocatorTests.Host(["192.0.2.1"], _ => null, debounce: TimeSpan.FromMilliseconds(50));
        await host.PublishedAsync(host.Monitor.Current.Generation);

        host.Monitor.SetFixed([IPAddress.Parse("192.0.2.50")]);

        // The fake GNS stores what it is sent as it is sent: nothing was queued, no timer waited.
        Assert.True(host.Stored()!.HasAddress(IPAddress.Parse("192.0.2.50")), "the update left on the monitor's thread");
        Assert.False(host.Stored()!.HasAddress(IPAddress.Parse("192.0.2.1")));
    }
}
