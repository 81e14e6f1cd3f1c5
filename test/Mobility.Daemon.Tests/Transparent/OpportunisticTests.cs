using System.Net;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Transparent;
using Mobility.Protocol.Identity;
using Mobility.Testing;
using Mobility.Transport;

namespace Mobility.Daemon.Tests.Transparent;

/// <summary>Opportunistic mode's parts without sockets: its rules, its options, and the owner lookup in a time budget.</summary>
public sealed class OpportunisticTests
{
    private static readonly IPAddress Target = IPAddress.Parse("198.51.100.7");

    [Fact]
    public void Without_opportunistic_mode_the_table_is_exactly_the_virtual_ranges_ones()
    {
        var pool = VirtualAddressPool.Parse("100.77.0.0/16");

        var rules = InterceptionRules.Install(pool, 0x6d6f62, 40001, 40002);

        Assert.EndsWith("ip6 daddr fd6d:6f62::/32 meta l4proto tcp redirect to :40002\n\t}\n}\n", rules, StringComparison.Ordinal);
        Assert.DoesNotContain("fib", rules, StringComparison.Ordinal);
        Assert.DoesNotContain("nfproto", rules, StringComparison.Ordinal);
    }

    [Fact]
    public void A_held_source_address_is_a_deprecated_host_address_on_lo_and_is_deleted_the_same_way()
    {
        Assert.Equal(["-4", "addr", "add", "10.17.0.2/32", "dev", "lo", "valid_lft", "forever", "preferred_lft", "0"],
            HeldSourceAddresses.Command("add", IPAddress.Parse("10.17.0.2")));
        Assert.Equal(["-6", "addr", "add", "fd00:17::2/128", "dev", "lo", "valid_lft", "forever", "preferred_lft", "0"],
            HeldSourceAddresses.Command("add", IPAddress.Parse("fd00:17::2")));
        Assert.Equal(["-4", "addr", "del", "10.17.0.2/32", "dev", "lo"], HeldSourceAddresses.Command("del", IPAddress.Parse("10.17.0.2")));
    }

    [Fact]
    public void Opportunistic_rules_redirect_other_tcp_last_and_leave_local_loopback_gns_excluded_prefixes_and_ports_alone()
    {
        var rules = InterceptionRules.Install(VirtualAddressPool.Parse("100.77.0.0/16"), 0x6d6f62, 40001, 40002, new OpportunisticRules(
            [IPAddress.Parse("192.0.2.53"), IPAddress.Parse("2001:db8::53")], [IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("10.1.0.0/16")], [22, 22, 5432]));

        var lines = rules.Split('\n').Select(l => l.Trim()).ToArray();
        int At(string line) => Array.IndexOf(lines, line) is >= 0 and var i ? i : throw new Xunit.Sdk.XunitException($"no line '{line}' in\n{rules}");
        var redirect4 = At("meta nfproto ipv4 meta l4proto tcp redirect to :40001");
        var redirect6 = At("meta nfproto ipv6 meta l4proto tcp redirect to :40002");
        string[] exempt =
        [
            "meta mark 0x006d6f62 return", "meta l4proto != tcp return", "fib daddr type local return", "ip daddr 127.0.0.0/8 return",
            "ip6 daddr ::/127 return", "ip6 daddr fe80::/10 return", "ip daddr 169.254.0.0/16 return", "ip daddr 224.0.0.0/3 return",
            "ip daddr 192.0.2.53/32 return", "ip6 daddr 2001:db8::53/128 return", "ip daddr 10.0.0.0/8 return", "ip daddr 10.1.0.0/16 return",
            "tcp dport 22 return", "tcp dport 5432 return",
        ];
        Assert.All(exempt, line => Assert.True(At(line) < redirect4, $"'{line}' comes before the redirect"));
        Assert.Single(lines, l => l == "tcp dport 22 return");
        Assert.True(At("ip daddr 100.77.0.0/16 meta l4proto tcp redirect to :40001") < At("meta l4proto != tcp return"), "virtual addresses first");
        Assert.Equal(redirect4 + 1, redirect6);
        Assert.EndsWith("redirect to :40002\n\t}\n}\n", rules, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_exclusions_and_budgets_are_reported_with_the_option()
    {
        var options = new MobilitydOptions();
        options.Transparent.OpportunisticExclude = "10.0.0.0/8, 10.0.0.1/8";
        options.Transparent.OpportunisticExcludePorts = "22,0";
        options.Transparent.OpportunisticBudget = options.Forwarding.ConnectTimeout + TimeSpan.FromSeconds(1);

        var failures = string.Join('\n', new MobilitydOptionsValidator().Validate(null, options).Failures ?? []);

        Assert.Contains("Transparent:OpportunisticExclude (--Transparent:OpportunisticExclude): '10.0.0.1/8'", failures, StringComparison.Ordinal);
        Assert.Contains("Transparent:OpportunisticExcludePorts (--Transparent:OpportunisticExcludePorts): '0'", failures, StringComparison.Ordinal);
        Assert.Contains("Transparent:OpportunisticBudget", failures, StringComparison.Ordinal);

        options = new MobilitydOptions();
        options.Transparent.OpportunisticExclude = "10.0.0.0/8, 2001:db8::/32";
        options.Transparent.OpportunisticExcludePorts = "22, 443";
        Assert.True(new MobilitydOptionsValidator().Validate(null, options).Succeeded);
        Assert.Equal([IPNetwork.Parse("10.0.0.0/8"), IPNetwork.Parse("2001:db8::/32")], options.Transparent.ExcludedPrefixes);
        Assert.Equal([(ushort)22, (ushort)443], options.Transparent.ExcludedPorts);
        Assert.False(options.Transparent.Opportunistic);
    }

    [Fact]
    public async Task An_answer_within_the_budget_is_used()
    {
        var time = new FakeTimeProvider();
        var inner = new ManualOwners();
        var budget = new OwnerLookupBudget(inner, TimeSpan.FromMilliseconds(100), time);

        var lookup = budget.ResolveAsync(Target, CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(lookup.IsCompleted);
        inner.Answer(Owner);

        Assert.Same(Owner, await lookup.WithTimeout());
        Assert.Equal(0, budget.OverBudget);
    }

    [Fact]
    public async Task A_lookup_over_the_budget_is_no_owner_and_goes_on_for_the_next_connection()
    {
        var (_, inner, budget) = await OverBudgetOnceAsync();

        Assert.Equal(1, budget.OverBudget);
        Assert.False(inner.Cancelled, "the lookup is not cancelled with the connection");

        // The lookup finishes later; the inner resolver has the answer (its cache) for the next connection, at once.
        inner.Answer(Owner);
        Assert.Same(Owner, await budget.ResolveAsync(Target, CancellationToken.None).AsTask().WithTimeout());
        Assert.Equal(1, budget.OverBudget);
        Assert.Equal(1, inner.Started);
    }

    [Fact]
    public async Task While_a_lookup_over_the_budget_still_runs_the_next_connection_to_that_address_goes_plain_without_waiting()
    {
        var (time, _, budget) = await OverBudgetOnceAsync();

        // No time passes: the answer comes without waiting for the budget again.
        var second = budget.ResolveAsync(Target, CancellationToken.None).AsTask();
        Assert.True(second.IsCompleted, "no second wait");
        Assert.Null(await second);
        Assert.Equal(2, budget.OverBudget);

        // Another address still gets its own wait.
        var other = budget.ResolveAsync(IPAddress.Parse("198.51.100.8"), CancellationToken.None).AsTask();
        Assert.False(other.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Null(await other.WithTimeout());
    }

    [Fact]
    public void Forget_reaches_the_inner_resolver()
    {
        var inner = new ManualOwners();
        new OwnerLookupBudget(inner, TimeSpan.FromMilliseconds(100), new FakeTimeProvider()).Forget(Target);
        Assert.Equal(Target, inner.Forgotten);
    }

    /// <summary>A lookup of <see cref="Target"/> that runs over the 100 ms budget (answered "no owner") and goes on.</summary>
    private static async Task<(FakeTimeProvider Time, ManualOwners Inner, OwnerLookupBudget Budget)> OverBudgetOnceAsync()
    {
        var time = new FakeTimeProvider();
        var inner = new ManualOwners();
        var budget = new OwnerLookupBudget(inner, TimeSpan.FromMilliseconds(100), time);
        var first = budget.ResolveAsync(Target, CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.Null(await first.WithTimeout());
        return (time, inner, budget);
    }

    private static readonly AddressOwner Owner = new(HostGuid.Parse("0123456789abcdef0123456789abcdef01234567"), [new IPEndPoint(Target, 7360)]);

    /// <summary>A resolver whose one lookup ends when the test says, and whose answer is then kept (as the daemon's cache keeps it).</summary>
    private sealed class ManualOwners : IAddressOwnerResolver
    {
        private readonly TaskCompletionSource<AddressOwner?> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Started { get; private set; }

        public bool Cancelled { get; private set; }

        public IPAddress? Forgotten { get; private set; }

        public void Answer(AddressOwner? owner) => _answer.SetResult(owner);

        public ValueTask<AddressOwner?> ResolveAsync(IPAddress address, CancellationToken cancellationToken)
        {
            if (_answer.Task.IsCompleted)
            {
                return new ValueTask<AddressOwner?>(_answer.Task.Result);
            }

            Started++;
            cancellationToken.Register(() => Cancelled = true);
            return new ValueTask<AddressOwner?>(_answer.Task);
        }

        public void Forget(IPAddress address) => Forgotten = address;
    }
}
