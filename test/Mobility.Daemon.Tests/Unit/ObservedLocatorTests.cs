using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Identity;
using Mobility.Daemon.Records;
using Mobility.Daemon.Tests.Fakes;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>The reflexive (Observed) locators the record publisher adds: per family, never one learned from addresses the host has lost.</summary>
public sealed class ObservedLocatorTests
{
    [Fact]
    public async Task After_a_move_no_record_lists_the_lost_address_as_observed()
    {
        // No NAT: the GNS sees the host at its own address, which is not published twice while it is the host's.
        var records = new List<GnsRecord>();
        await using var host = Host(["192.0.2.1"], record =>
        {
            lock (records)
            {
                records.Add(record);
            }

            return new IPEndPoint(record.Locators.First(l => l.Kind == LocatorKind.Host).Address, 40000);
        });
        await host.PublishedAsync(host.Monitor.Current.Generation);

        var moved = host.Monitor.SetFixed([IPAddress.Parse("192.0.2.50")]);
        await host.PublishedAsync(moved.Generation);

        lock (records)
        {
            var afterMove = records.Where(r => r.HasAddress(IPAddress.Parse("192.0.2.50"))).ToList();
            Assert.NotEmpty(afterMove);
            Assert.All(afterMove, r => Assert.DoesNotContain(r.Locators, l => l.Address.Equals(IPAddress.Parse("192.0.2.1"))));
        }
    }

    [Fact]
    public async Task Observed_addresses_are_kept_per_family()
    {
        // Behind a NAT in each family; the GNS is reached over IPv4 and IPv6 in turn.
        var v4Nat = new IPEndPoint(IPAddress.Parse("198.51.100.7"), 40000);
        var v6Nat = new IPEndPoint(IPAddress.Parse("2001:db8:ffff::7"), 40000);
        var replies = 0;
        await using var host = Host(["10.0.0.2", "fd00::2"], _ => Interlocked.Increment(ref replies) % 2 == 1 ? v4Nat : v6Nat);

        await TestTimeout.Eventually(() => host.Stored() is { } r && r.Locators.Count(l => l.Kind == LocatorKind.Observed) == 2,
            "a record with the observed address of each family");
        var observed = host.Stored()!.Locators.Where(l => l.Kind == LocatorKind.Observed).Select(l => l.Address).ToList();
        Assert.Contains(v4Nat.Address, observed);
        Assert.Contains(v6Nat.Address, observed);
    }

    [Fact]
    public async Task A_family_the_host_left_loses_its_observed_address_and_the_other_family_keeps_its_own()
    {
        var v4Nat = new IPEndPoint(IPAddress.Parse("198.51.100.7"), 40000);
        var v6Nat = new IPEndPoint(IPAddress.Parse("2001:db8:ffff::7"), 40000);
        var sawV4 = false;
        var records = new List<GnsRecord>();
        await using var host = Host(["10.0.0.2", "fd00::2"], record =>
        {
            lock (records)
            {
                records.Add(record);
                // Over IPv4 while the host has it, then over IPv6.
                sawV4 |= record.Locators.Any(l => l.Kind == LocatorKind.Observed);
                return record.HasAddress(IPAddress.Parse("10.0.0.2")) && !sawV4 ? v4Nat : v6Nat;
            }
        });
        await TestTimeout.Eventually(() => host.Stored() is { } r && r.Locators.Count(l => l.Kind == LocatorKind.Observed) == 2,
            "a record with the observed address of each family");

        var ipv6Only = host.Monitor.SetFixed([IPAddress.Parse("fd00::2")]);
        await host.PublishedAsync(ipv6Only.Generation);

        lock (records)
        {
            var after = records.Where(r => !r.HasAddress(IPAddress.Parse("10.0.0.2"))).ToList();
            Assert.NotEmpty(after);
            Assert.All(after, r => Assert.DoesNotContain(r.Locators, l => l.Address.Equals(v4Nat.Address)));
            Assert.Contains(after[0].Locators, l => l.Kind == LocatorKind.Observed && l.Address.Equals(v6Nat.Address));
        }
    }

    internal static PublishingHost Host(string[] addresses, Func<GnsRecord, IPEndPoint?> observe, TimeSpan? debounce = null)
    {
        var options = Options.Create(new MobilitydOptions
        {
            StateDir = Directory.CreateTempSubdirectory("mobilityd-tests-").FullName,
            Addresses = addresses,
        });
        options.Value.AddressWatch.Debounce = debounce ?? TimeSpan.Zero;
        return new PublishingHost(options, observe);
    }

    /// <summary>A record publisher on fixed addresses and a fake GNS; started at once, stopped on dispose.</summary>
    internal sealed class PublishingHost : IAsyncDisposable
    {
        private readonly FakeGns _gns = new();
        private readonly DaemonIdentity _identity;

        public PublishingHost(IOptions<MobilitydOptions> options, Func<GnsRecord, IPEndPoint?> observe)
        {
            _identity = new DaemonIdentity(options);
            Monitor = new AddressMonitor(options, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<AddressMonitor>.Instance);
            Publisher = new RecordPublisher(options, _identity, Monitor, _gns.CreateClient(observe), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<RecordPublisher>.Instance);
            Publisher.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        public AddressMonitor Monitor { get; }

        public RecordPublisher Publisher { get; }

        public GnsRecord? Stored() => _gns.Get(_identity.Guid);

        public async Task PublishedAsync(long generation) =>
            Assert.True(await Publisher.WaitPublishedAsync(generation, TestTimeout.Default, CancellationToken.None).WithTimeout(), "the record was not published");

        public async ValueTask DisposeAsync()
        {
            await Publisher.StopAsync(CancellationToken.None).WithTimeout();
            Publisher.Dispose();
            Monitor.Dispose();
            _identity.Dispose();
        }
    }
}
