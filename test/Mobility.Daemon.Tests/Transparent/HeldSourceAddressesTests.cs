using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Addresses;
using Mobility.Daemon.Transparent;
using Mobility.Testing;

namespace Mobility.Daemon.Tests.Transparent;

/// <summary>What opportunistic mode holds on lo after this host moved, and what a start after a crash removes (the <c>ip</c> commands recorded).</summary>
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
        var held = new HeldSourceAddresses(options, monitor, NullLogger<HeldSourceAddresses>.Instance, (arguments, _) =>
        {
            _commands.Enqueue(string.Join(' ', arguments));
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
        Assert.Equal(["-4 addr add 10.17.0.2/32 dev lo valid_lft forever preferred_lft 0"], _commands);

        lease.Dispose();
        await TestTimeout.Eventually(() => !File.Exists(StateFile), "the state file gone with the last stream");
        Assert.Equal("-4 addr del 10.17.0.2/32 dev lo", _commands.Last());
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
        Assert.False(File.Exists(StateFile));
    }

    [Fact]
    public async Task A_start_after_a_crash_removes_from_lo_what_the_killed_daemon_held()
    {
        await File.WriteAllLinesAsync(StateFile, ["10.17.0.2", "fd00:17::2", "not an address"]);
        var (held, monitor) = Create();
        using var _ = monitor;

        await held.StartAsync(CancellationToken.None);

        Assert.Equal(["-4 addr del 10.17.0.2/32 dev lo", "-6 addr del fd00:17::2/128 dev lo"], _commands);
        Assert.False(File.Exists(StateFile));
        await held.StopAsync(CancellationToken.None);
    }
}
