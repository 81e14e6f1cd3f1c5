using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Mobility.Relay.Registry;
using System.IO.Pipelines;

namespace Mobility.Relay.Tests;

/// <summary>The registry's bounds: hosts, replacement of a GUID's older registration, pending splices, one use per splice id.</summary>
public sealed class HostRegistryTests
{
    private static HostGuid Guid(byte fill) => HostGuid.FromBytes(Enumerable.Repeat(fill, HostGuid.Size).ToArray());

    private static HostSession Session(byte fill) => new(Guid(fill), new NoConnection());

    [Fact]
    public void Registrations_beyond_the_limit_are_refused_but_a_guid_may_replace_its_own()
    {
        var counters = new RelayCounters();
        var registry = new HostRegistry(new RelayLimits { MaxHosts = 2 }, counters);
        Assert.True(registry.TryRegister(Session(1), out var none));
        Assert.Null(none);
        Assert.True(registry.TryRegister(Session(2), out _));

        Assert.False(registry.TryRegister(Session(3), out _));

        var older = registry.Find(Guid(1))!;
        var newer = Session(1);
        Assert.True(registry.TryRegister(newer, out var replaced));
        Assert.Same(older, replaced);
        Assert.Same(newer, registry.Find(Guid(1)));
        Assert.Equal(2, counters.Hosts);

        // The replaced session's end must not unregister its successor.
        registry.Unregister(older);
        Assert.Same(newer, registry.Find(Guid(1)));
        registry.Unregister(newer);
        Assert.Null(registry.Find(Guid(1)));
        Assert.Equal(1, counters.Hosts);
    }

    [Fact]
    public void A_splice_id_is_taken_once_and_only_by_the_host_it_was_made_for()
    {
        var counters = new RelayCounters();
        var registry = new HostRegistry(new RelayLimits(), counters);
        var pending = registry.AddPending(Guid(1))!;
        Assert.Equal(RelayMessage.SpliceIdSize, pending.Id.Length);
        Assert.Equal(1, counters.PendingSplices);

        Assert.Null(registry.TakePending(Guid(2), pending.Id));
        var wrongId = (byte[])pending.Id.Clone();
        wrongId[0] ^= 1;
        Assert.Null(registry.TakePending(Guid(1), wrongId));

        Assert.Same(pending, registry.TakePending(Guid(1), pending.Id));
        Assert.Null(registry.TakePending(Guid(1), pending.Id));
        Assert.Equal(0, counters.PendingSplices);
    }

    [Fact]
    public void Pending_splices_beyond_the_limit_are_refused_until_one_is_removed()
    {
        var registry = new HostRegistry(new RelayLimits { MaxPendingSplices = 2 }, new RelayCounters());
        var first = registry.AddPending(Guid(1))!;
        Assert.NotNull(registry.AddPending(Guid(1)));
        Assert.Null(registry.AddPending(Guid(2)));

        registry.RemovePending(first);
        Assert.NotNull(registry.AddPending(Guid(2)));
        Assert.Null(registry.TakePending(Guid(1), first.Id));
    }

    [Fact]
    public void Counters_are_served_in_prometheus_text_with_every_refusal_status()
    {
        var counters = new RelayCounters();
        counters.Refused(RelayStatus.BadProof);
        counters.Relayed(1500);
        var text = counters.ToPrometheusText();

        Assert.Contains("relay_bytes_total 1500\n", text, StringComparison.Ordinal);
        Assert.Contains("relay_refusals_total{status=\"bad_proof\"} 1\n", text, StringComparison.Ordinal);
        Assert.Contains("relay_refusals_total{status=\"unknown_splice\"} 0\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("status=\"ok\"", text, StringComparison.Ordinal);
    }

    /// <summary>A connection the registry only holds (it never reads or writes one).</summary>
    private sealed class NoConnection : ConnectionContext
    {
        public override string ConnectionId { get; set; } = "test";

        public override IFeatureCollection Features { get; } = new FeatureCollection();

        public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

        public override IDuplexPipe Transport { get; set; } = null!;
    }
}
