using System.Net;
using Microsoft.Extensions.Time.Testing;
using Mobility.Gns.Claims;

namespace Mobility.Gns.Tests.Storage;

/// <summary>
/// The address-claim rules of the reverse index (docs/protocol.md, "Address claims") that every
/// <see cref="IGnsStore"/> must follow: attested claims first, seniority, bounds per address and per
/// source, expiry of unattested claims. Each store runs the set through a subclass.
/// </summary>
public abstract class AddressClaimContractTests : StoreContractTestsBase
{
    protected static readonly IPAddress Owner = IPAddress.Parse("192.0.2.10");
    protected static readonly IPAddress Attacker = IPAddress.Parse("198.51.100.66");

    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 12, 6, 3, 0, 0, TimeSpan.Zero));

    protected ClaimLimits Limits { get; } = new();

    /// <summary>The store under test with the contract's <see cref="Limits"/> and clock.</summary>
    protected abstract IGnsStore CreateStore(ClaimLimits limits, TimeProvider time);

    protected sealed override IGnsStore CreateStore() => CreateStore(Limits, Time);

    [Fact]
    public async Task Forty_keys_sorting_below_the_owner_do_not_push_the_owner_out_of_the_answer()
    {
        var owner = NewKey();
        var liars = LiarsBelow(owner.Guid, 40);
        Assert.Equal(StoreStatus.Stored, (await Put(Record(owner, 1, null, Owner.ToString()), Owner)).Status);
        foreach (var liar in liars)
        {
            Assert.Equal(StoreStatus.Stored, (await Put(Record(liar, 1, null, Owner.ToString()), Attacker)).Status);
        }

        var answer = await Store.ReverseAsync(Owner, 32).WithTimeout();
        Assert.Equal(owner.Guid, answer.Guids[0]);
    }

    [Fact]
    public async Task A_claim_sent_from_the_claimed_address_ranks_before_older_unattested_claims()
    {
        var liar = NewKey();
        var owner = NewKey();
        await Put(Record(liar, 1, null, Owner.ToString()), Attacker);
        Time.Advance(TimeSpan.FromSeconds(1));
        await Put(Record(owner, 1, null, Owner.ToString()), Owner);

        Assert.Equal([owner.Guid, liar.Guid], (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Within_a_kind_claims_are_listed_in_guid_order()
    {
        var keys = new[] { NewKey(), NewKey(), NewKey() };
        foreach (var key in keys)
        {
            await Put(Record(key, 1, null, "10.0.0.5"), Attacker);
            Time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(keys.Select(k => k.Guid).Order(), (await Store.ReverseAsync(IPAddress.Parse("10.0.0.5"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Attestation_stays_while_the_record_keeps_the_address_even_when_sent_from_another()
    {
        var owner = NewKey();
        var liar = NewKey();
        await Put(Record(owner, 1, null, Owner.ToString(), "203.0.113.5"), Owner);
        await Put(Record(liar, 1, null, Owner.ToString()), Attacker);
        // The multihomed owner now sends from its other address.
        await Put(Record(owner, 2, null, Owner.ToString(), "203.0.113.5"), IPAddress.Parse("203.0.113.5"));

        Assert.Equal(owner.Guid, (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids[0]);
        // An address dropped from the record drops its claim and its attestation.
        await Put(Record(owner, 3, null, "203.0.113.5"), IPAddress.Parse("203.0.113.5"));
        await Put(Record(owner, 4, null, Owner.ToString(), "203.0.113.5"), IPAddress.Parse("203.0.113.5"));
        Assert.Equal(new[] { liar.Guid, owner.Guid }.Order(), (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Unattested_claims_per_address_are_bounded_and_a_newcomer_never_displaces_an_incumbent()
    {
        Assert.Equal(16, Limits.MaxUnattestedPerAddress);
        var early = new List<HostGuid>();
        for (var i = 0; i < Limits.MaxUnattestedPerAddress; i++)
        {
            var key = NewKey();
            early.Add(key.Guid);
            // Each from its own source, so only the per-address bound applies.
            await Put(Record(key, 1, null, "10.0.0.7"), IPAddress.Parse($"198.51.100.{i + 1}"));
        }

        var late = NewKey();
        Assert.Equal(StoreStatus.Stored, (await Put(Record(late, 1, null, "10.0.0.7", "10.0.0.8"), IPAddress.Parse("203.0.113.1"))).Status);

        var answer = await Store.ReverseAsync(IPAddress.Parse("10.0.0.7"), 100).WithTimeout();
        Assert.Equal(early.Order(), answer.Guids.Order());
        Assert.False(answer.Truncated);
        // The record itself is stored whole, and its other claim is indexed.
        Assert.NotNull(await Store.GetAsync(late.Guid).WithTimeout());
        Assert.Equal([late.Guid], (await Store.ReverseAsync(IPAddress.Parse("10.0.0.8"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task An_attested_claim_is_indexed_even_when_the_unattested_slots_are_full()
    {
        for (var i = 0; i < Limits.MaxUnattestedPerAddress; i++)
        {
            await Put(Record(NewKey(), 1, null, Owner.ToString()), IPAddress.Parse($"198.51.100.{i + 1}"));
        }

        var owner = NewKey();
        await Put(Record(owner, 1, null, Owner.ToString()), Owner);

        var answer = await Store.ReverseAsync(Owner, 100).WithTimeout();
        Assert.Equal(Limits.MaxUnattestedPerAddress + 1, answer.Guids.Count);
        Assert.Equal(owner.Guid, answer.Guids[0]);
    }

    [Fact]
    public async Task Unattested_claims_per_source_are_bounded_and_an_ipv6_source_counts_by_its_64()
    {
        Limits.MaxUnattestedPerSource = 4;
        await ReopenAsync();
        var key = NewKey();
        var addresses = Enumerable.Range(1, 6).Select(i => $"10.1.0.{i}").ToArray();
        await Put(Record(key, 1, null, addresses), IPAddress.Parse("2001:db8:1:2::1"));
        var other = NewKey();
        // Another address of the same /64: the same source.
        await Put(Record(other, 1, null, "10.1.0.99"), IPAddress.Parse("2001:db8:1:2::ffff"));

        var indexed = 0;
        foreach (var address in addresses)
        {
            indexed += (await Store.ReverseAsync(IPAddress.Parse(address), 10).WithTimeout()).Guids.Count;
        }

        Assert.Equal(4, indexed);
        Assert.Empty((await Store.ReverseAsync(IPAddress.Parse("10.1.0.99"), 10).WithTimeout()).Guids);
        // Another /64 has its own budget.
        await Put(Record(other, 2, null, "10.1.0.99"), IPAddress.Parse("2001:db8:1:3::1"));
        Assert.Equal([other.Guid], (await Store.ReverseAsync(IPAddress.Parse("10.1.0.99"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Unattested_claims_expire_unless_refreshed_and_free_their_slots()
    {
        Limits.MaxUnattestedPerAddress = 1;
        await ReopenAsync();
        var stale = NewKey();
        var fresh = NewKey();
        var refreshed = NewKey();
        await Put(Record(stale, 1, null, "10.0.0.9"), Attacker);
        await Put(Record(refreshed, 1, null, "10.0.0.10"), Attacker);
        await Put(Record(fresh, 1, null, "10.0.0.9"), IPAddress.Parse("203.0.113.2"));
        Assert.Equal([stale.Guid], (await Store.ReverseAsync(IPAddress.Parse("10.0.0.9"), 10).WithTimeout()).Guids);

        Time.Advance(Limits.ClaimLifetime - TimeSpan.FromSeconds(1));
        await Put(Record(refreshed, 2, null, "10.0.0.10"), Attacker);
        Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty((await Store.ReverseAsync(IPAddress.Parse("10.0.0.9"), 10).WithTimeout()).Guids);
        Assert.Equal([refreshed.Guid], (await Store.ReverseAsync(IPAddress.Parse("10.0.0.10"), 10).WithTimeout()).Guids);

        // The expired slot is free again.
        await Put(Record(fresh, 2, null, "10.0.0.9"), IPAddress.Parse("203.0.113.2"));
        Assert.Equal([fresh.Guid], (await Store.ReverseAsync(IPAddress.Parse("10.0.0.9"), 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Attested_claims_live_while_refreshed_and_forged_ones_that_are_not_refreshed_free_their_slots()
    {
        Limits.MaxAttestedPerAddress = 2;
        await ReopenAsync();
        var owner = NewKey();
        var forgers = new[] { NewKey(), NewKey() };
        // A forger of source addresses fills the attested slots before the owner's first update.
        foreach (var forger in forgers)
        {
            await Put(Record(forger, 1, null, Owner.ToString()), Owner);
        }

        await Put(Record(owner, 1, null, Owner.ToString()), Owner);
        Assert.DoesNotContain(owner.Guid, (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);

        // The owner refreshes (mobilityd: every half TTL); the forger stopped.
        for (var version = 2UL; version < 12; version++)
        {
            Time.Advance(Limits.ClaimLifetime / 10);
            await Put(Record(owner, version, null, Owner.ToString()), Owner);
        }

        Assert.Equal([owner.Guid], (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
        Time.Advance(Limits.ClaimLifetime - TimeSpan.FromSeconds(1));
        Assert.Equal([owner.Guid], (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
        Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty((await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task A_claim_of_an_in_process_caller_is_unattested()
    {
        var owner = NewKey();
        var local = NewKey();
        await Put(Record(local, 1, null, Owner.ToString()), null);
        await Put(Record(owner, 1, null, Owner.ToString()), Owner);
        Assert.Equal([owner.Guid, local.Guid], (await Store.ReverseAsync(Owner, 10).WithTimeout()).Guids);
    }

    [Fact]
    public async Task Flood_of_ten_thousand_keys_on_one_address_and_one_source_on_many_addresses_leaves_the_owner_first_and_state_bounded()
    {
        const int FloodKeys = 10_000;
        var owner = NewKey();
        await Put(Record(owner, 1, null, Owner.ToString()), Owner);
        var victimsOwner = NewKey();
        await Put(Record(victimsOwner, 1, null, "192.0.2.20"), IPAddress.Parse("192.0.2.20"));

        // One throw-away key per claim (the cost of a key is one Ed25519 key generation), from 100 sources.
        var puts = new List<Task<StoreResult>>(FloodKeys + 1_000);
        for (var i = 0; i < FloodKeys; i++)
        {
            using var key = HostKey.Generate();
            puts.Add(Store.PutAsync(Record(key, 1, null, Owner.ToString()), false, IPAddress.Parse($"198.51.100.{i % 100}")).AsTask());
        }

        // One source claiming many addresses: 1,000 keys of 8 private addresses each, and the other victim's address.
        for (var i = 0; i < 1_000; i++)
        {
            using var key = HostKey.Generate();
            var addresses = Enumerable.Range(0, 8).Select(j => $"10.{i / 250}.{i % 250}.{j}").Append("192.0.2.20").ToArray();
            puts.Add(Store.PutAsync(Record(key, 1, null, addresses), false, Attacker).AsTask());
        }

        foreach (var put in puts)
        {
            Assert.Equal(StoreStatus.Stored, (await put.WithTimeout()).Status);
        }

        var answer = await Store.ReverseAsync(Owner, 61).WithTimeout();
        Assert.Equal(owner.Guid, answer.Guids[0]);
        Assert.Equal(1 + Limits.MaxUnattestedPerAddress, answer.Guids.Count);
        Assert.Equal(victimsOwner.Guid, (await Store.ReverseAsync(IPAddress.Parse("192.0.2.20"), 61).WithTimeout()).Guids[0]);
        if (ClaimCount is { } count)
        {
            // The two owners' claims, 16 unattested on the flooded address, and what the one source may hold.
            Assert.InRange(count, 0, 2 + Limits.MaxUnattestedPerAddress + Limits.MaxUnattestedPerSource);
        }
    }

    /// <summary>Entries the store's reverse index holds, when it can say (null otherwise).</summary>
    protected abstract int? ClaimCount { get; }

    protected Task<StoreResult> Put(GnsRecord record, IPAddress? source) => Store.PutAsync(record, false, source).WithTimeout();

    /// <summary>Fresh keys whose GUIDs sort below <paramref name="guid"/>: the attack of issue 13.</summary>
    protected List<HostKey> LiarsBelow(HostGuid guid, int count)
    {
        var liars = new List<HostKey>();
        while (liars.Count < count)
        {
            var key = HostKey.Generate();
            if (key.Guid.CompareTo(guid) < 0)
            {
                liars.Add(Adopt(key));
            }
            else
            {
                key.Dispose();
            }
        }

        return liars;
    }
}
