using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Transparent;
using Mobility.Testing;

namespace Mobility.Daemon.Tests.Transparent;

/// <summary>
/// What opportunistic mode holds on lo after this host moved, how it keeps the held IPv4 addresses off ARP, and what a start
/// after a crash removes (the <c>ip</c> commands and the nft transactions recorded, in order; the ARP table's effect on a
/// real link is tested in Mobility.Netlab.FunctionalTests, OpportunisticTests).
/// </summary>
public sealed class HeldSourceAddressesTests : IDisposable
{
    private readonly string _stateDir = Directory.CreateTempSubdirectory("held-").FullName;
    private readonly ConcurrentQueue<string> _commands = new();

    public void Dispose() => Directory.Delete(_stateDir, recursive: true);

    private string StateFile => Path.Combine(_stateDir, HeldSourceAddresses.StateFile);

    private (HeldSourceAddresses Held, AddressMonitor Monitor) Create()
    {
        var options = Options.Create(new MobilitydOptions { StateDir = _stateDir, Addresses = ["192.168.1.2"] });
        var monitor = new AddressMonitor(options, new FakeTimeProvider(), NullLogger<AddressMonitor>.Instance);
        var held = new HeldSourceAddresses(options, monitor, NullLogger<HeldSourceAddresses>.Instance, (file, arguments, input, _) =>
        {
            _commands.Enqueue(file == "nft" ? $"nft {string.Join(' ', arguments)} <<{input}" : string.Join(' ', arguments));
            return Task.CompletedTask;
        });
        return (held, monitor);
    }

    [Fact]
    public async Task A_source_the_host_left_is_held_and_listed_for_crash_recovery_until_its_last_stream_ends()
    {
        var (held, monitor) = Create();
        using var _ = monitor;
        await held.StartAsync(CancellationToken.None);

        var lease = held.Use(IPAddress.Parse("10.17.0.2"));
        using var kept = held.Use(IPAddress.Parse("192.168.1.2")); // The host still has this one: nothing to hold.
        await TestTimeout.Eventually(() => File.Exists(StateFile), "the state file");
        Assert.Equal(["10.17.0.2"], await File.ReadAllLinesAsync(StateFile));
        // Kept off ARP before it is on lo.
        Assert.Equal([Nft("10.17.0.2"), "-4 addr add 10.17.0.2/32 dev lo valid_lft forever preferred_lft 0"], _commands);

        lease.Dispose();
        await TestTimeout.Eventually(() => !File.Exists(StateFile), "the state file gone with the last stream");
        // Off lo first, then the ARP table goes.
        Assert.Equal(["-4 addr del 10.17.0.2/32 dev lo", Nft()], _commands.TakeLast(2));
        Assert.Empty(held.Held);
        await held.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Stopping_removes_every_held_address_and_the_state_file()
    {
        var (held, monitor) = Create();
        using var _ = monitor;
        await held.StartAsync(CancellationToken.None);
        using var lease = held.Use(IPAddress.Parse("fd00:17::2"));
        await TestTimeout.Eventually(() => File.Exists(StateFile), "the state file");

        await held.StopAsync(CancellationToken.None);

        Assert.Equal("-6 addr del fd00:17::2/128 dev lo", _commands.Last());
        Assert.DoesNotContain(_commands, c => c.StartsWith("nft", StringComparison.Ordinal)); // Neighbour discovery needs no guard.
        Assert.False(File.Exists(StateFile));
    }

    [Fact]
    public async Task The_arp_table_lists_every_held_ipv4_address_and_goes_on_stop()
    {
        var (held, monitor) = Create();
        using var _ = monitor;
        await held.StartAsync(CancellationToken.None);
        using var first = held.Use(IPAddress.Parse("10.17.0.2"));
        await TestTimeout.Eventually(() => held.Held.Count == 1, "the first address held");
        using var v6 = held.Use(IPAddress.Parse("fd00:17::2"));
        using var second = held.Use(IPAddress.Parse("10.9.0.7"));
        await TestTimeout.Eventually(() => held.Held.Count == 3, "all three held");
        Assert.Equal(Nft("10.17.0.2", "10.9.0.7"), _commands.Last(c => c.StartsWith("nft", StringComparison.Ordinal)));

        await held.StopAsync(CancellationToken.None);

        Assert.Equal(Nft(), _commands.Last());
        Assert.Empty(held.Held);
    }

    [Fact]
    public void The_arp_rules_replace_the_table_whole_and_an_empty_list_removes_it()
    {
        var rules = HeldSourceAddresses.ArpRules([IPAddress.Parse("10.17.0.2"), IPAddress.Parse("10.9.0.7")]);
        Assert.StartsWith("add table arp mobility-held\ndelete table arp mobility-held\ntable arp mobility-held {", rules, StringComparison.Ordinal);
        Assert.Contains("elements = { 10.17.0.2, 10.9.0.7 }", rules, StringComparison.Ordinal);
        Assert.Contains("arp operation request arp daddr ip @held drop", rules, StringComparison.Ordinal);
        Assert.Equal("add table arp mobility-held\ndelete table arp mobility-held\n", HeldSourceAddresses.ArpRules([]));
    }

    private static string Nft(params string[] ipv4) => $"nft -f - <<{HeldSourceAddresses.ArpRules(ipv4.Select(IPAddress.Parse))}";

    [Fact]
    public async Task A_start_after_a_crash_removes_from_lo_what_the_killed_daemon_held()
    {
        await File.WriteAllLinesAsync(StateFile, ["10.17.0.2", "fd00:17::2", "not an address"]);
        var (held, monitor) = Create();
        using var _ = monitor;

        await held.StartAsync(CancellationToken.None);

        Assert.Equal(["-4 addr del 10.17.0.2/32 dev lo", "-6 addr del fd00:17::2/128 dev lo", Nft()], _commands);
        Assert.False(File.Exists(StateFile));
        await held.StopAsync(CancellationToken.None);
    }
}
