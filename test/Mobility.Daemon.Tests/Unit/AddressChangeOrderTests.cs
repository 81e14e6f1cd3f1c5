using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Mobility.Daemon.Addresses;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>
/// Who hears of an address change first: the record's update, then the transport's hand-over, then the flags of the
/// background loops, whatever order they subscribed in (each wake-up of another thread may let the scheduler switch
/// away from the monitor's thread: in the netlab's simultaneous moves the update left 16-27 ms after the change while
/// it was told last).
/// </summary>
public sealed class AddressChangeOrderTests
{
    [Fact]
    public void Subscribers_are_told_in_their_order_and_within_an_order_as_they_subscribed()
    {
        var options = Options.Create(new MobilitydOptions { StateDir = Directory.CreateTempSubdirectory("mobilityd-tests-").FullName, Addresses = ["192.0.2.1"] });
        using var monitor = new AddressMonitor(options, TimeProvider.System, NullLogger<AddressMonitor>.Instance);
        var told = new List<string>();
        using var background1 = monitor.Subscribe(() => told.Add("background 1"));
        using var transport = monitor.Subscribe(() => told.Add("transport"), AddressChangeOrder.Transport);
        using var background2 = monitor.Subscribe(() => told.Add("background 2"), AddressChangeOrder.Background);
        using var publish = monitor.Subscribe(() => told.Add("publish"), AddressChangeOrder.Publish);
        var gone = monitor.Subscribe(() => told.Add("unsubscribed"), AddressChangeOrder.Publish);
        gone.Dispose();

        monitor.SetFixed([IPAddress.Parse("192.0.2.50")]);

        Assert.Equal(["publish", "transport", "background 1", "background 2"], told);
    }
}
