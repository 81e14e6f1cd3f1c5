using System.Collections.Immutable;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Mobility.Daemon.Nat;

namespace Mobility.Daemon.Tests.Nat;

/// <summary>RFC 5780's verdicts from the probes' answers: no sockets, the check time from a fake clock.</summary>
public sealed class NatClassifierTests
{
    private static readonly IPEndPoint Gns = EP("198.18.1.2:7353");
    private static readonly IPEndPoint GnsOtherPort = EP("198.18.1.2:7354");
    private static readonly IPEndPoint SecondGns = EP("198.18.2.2:7353");
    private static readonly IPEndPoint Local = EP("192.168.1.2:40000");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 10, 0, 0, TimeSpan.Zero));

    private static IPEndPoint EP(string text) => IPEndPoint.Parse(text);

    private static NatFamilyProbes Probes(string? first, string? otherPort = null, string[]? otherAddresses = null, bool? filter = null, IPEndPoint? local = null)
        => new(AddressFamily.InterNetwork, local ?? Local, new NatProbe(Gns, first is null ? null : EP(first)),
            otherPort is null ? null : new NatProbe(GnsOtherPort, otherPort == "-" ? null : EP(otherPort)),
            [.. (otherAddresses ?? []).Select(a => new NatProbe(SecondGns, a == "-" ? null : EP(a)))], filter);

    private NatReport Classify(NatFamilyProbes probes) => NatClassifier.Classify(probes, _time.GetUtcNow());

    [Fact]
    public void Same_outside_endpoint_from_both_ports_is_endpoint_independent_and_a_lost_other_port_answer_is_port_filtering()
    {
        var report = Classify(Probes("198.18.101.2:40000", otherPort: "198.18.101.2:40000", filter: false));

        Assert.True(report.BehindNat);
        Assert.Equal(EP("198.18.101.2:40000"), report.Reflexive);
        Assert.Equal(NatMapping.EndpointIndependent, report.Mapping);
        Assert.Equal(NatFiltering.AddressAndPortDependent, report.Filtering);
        Assert.Equal(_time.GetUtcNow(), report.CheckedAt);
        Assert.Equal("ipv4", report.FamilyName);
    }

    [Fact]
    public void Another_outside_port_for_the_other_gns_port_is_address_and_port_dependent()
    {
        var report = Classify(Probes("198.18.101.2:31000", otherPort: "198.18.101.2:52011", filter: false));

        Assert.Equal(NatMapping.AddressAndPortDependent, report.Mapping);
        Assert.Equal("address-and-port-dependent", NatClassifier.Name(report.Mapping));
    }

    [Fact]
    public void Same_mapping_for_the_other_port_but_another_for_another_address_is_address_dependent()
    {
        var exact = Classify(Probes("198.18.101.2:40000", otherPort: "198.18.101.2:40000", otherAddresses: ["198.18.101.2:40007"]));
        Assert.Equal(NatMapping.AddressDependent, exact.Mapping);
        Assert.DoesNotContain("may be address-and-port-dependent", exact.Detail, StringComparison.Ordinal);

        // Without the port test the address test alone cannot rule out port dependence, and says so.
        var vague = Classify(Probes("198.18.101.2:40000", otherAddresses: ["198.18.101.2:40007"]));
        Assert.Equal(NatMapping.AddressDependent, vague.Mapping);
        Assert.Contains("may be address-and-port-dependent", vague.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void The_socket_s_own_endpoint_coming_back_means_no_nat_whatever_else_answered()
    {
        var report = Classify(Probes("192.168.1.2:40000", otherPort: "192.168.1.2:40000", filter: true));

        Assert.False(report.BehindNat);
        Assert.Equal(NatMapping.None, report.Mapping);
        Assert.Equal(NatFiltering.None, report.Filtering);

        // A firewall without translation still drops the answer from a port never contacted.
        Assert.Equal(NatFiltering.AddressAndPortDependent, Classify(Probes("192.168.1.2:40000", filter: false)).Filtering);
    }

    [Fact]
    public void Answer_from_the_other_port_behind_a_nat_is_address_dependent_filtering_with_a_note()
    {
        var report = Classify(Probes("198.18.101.2:40000", otherPort: "198.18.101.2:40000", filter: true));

        Assert.Equal(NatFiltering.AddressDependent, report.Filtering);
        Assert.Contains("endpoint-independent", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void No_answer_from_the_first_gns_leaves_everything_unknown_and_names_the_server()
    {
        var report = Classify(Probes(null, otherPort: "198.18.101.2:40000", filter: true));

        Assert.Null(report.Reflexive);
        Assert.Null(report.BehindNat);
        Assert.Equal(NatMapping.Unknown, report.Mapping);
        Assert.Equal(NatFiltering.Unknown, report.Filtering);
        Assert.Equal($"no answer from {Gns}", report.Detail);
    }

    [Fact]
    public void One_gns_without_a_reflect_port_gives_the_reflexive_address_but_no_behaviour()
    {
        var report = Classify(Probes("198.18.101.2:40000"));

        Assert.True(report.BehindNat);
        Assert.Equal(NatMapping.Unknown, report.Mapping);
        Assert.Equal(NatFiltering.Unknown, report.Filtering);
        Assert.Contains("mapping not tested", report.Detail, StringComparison.Ordinal);
        Assert.Contains("filtering not tested", report.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Unanswered_comparison_probes_do_not_count_as_a_different_mapping()
    {
        var report = Classify(Probes("198.18.101.2:40000", otherPort: "-", otherAddresses: ["-"], filter: false));

        Assert.Equal(NatMapping.Unknown, report.Mapping);
    }

    [Fact]
    public void Unknown_local_endpoint_still_classifies_the_mapping()
    {
        var probes = Probes("198.18.101.2:31000", otherPort: "198.18.101.2:52011") with { Local = null };
        var report = Classify(probes);

        Assert.Null(report.BehindNat);
        Assert.Equal(NatMapping.AddressAndPortDependent, report.Mapping);
    }

    [Fact]
    public void A_later_check_with_the_same_verdict_is_the_same_behaviour_and_a_new_port_is_not()
    {
        var first = Classify(Probes("198.18.101.2:40000", otherPort: "198.18.101.2:40000", filter: false));
        _time.Advance(TimeSpan.FromMinutes(5));
        var again = Classify(Probes("198.18.101.2:40000", otherPort: "198.18.101.2:40000", filter: false));
        var rebound = Classify(Probes("198.18.101.2:20417", otherPort: "198.18.101.2:20417", filter: false));

        Assert.True(again.CheckedAt > first.CheckedAt);
        Assert.True(NatClassifier.SameBehaviour(first, again));
        Assert.False(NatClassifier.SameBehaviour(first, rebound));
        Assert.False(NatClassifier.SameBehaviour(null, first));
    }

    [Fact]
    public void Names_are_the_ones_the_api_documents()
    {
        Assert.Equal(["unknown", "none", "endpoint-independent", "address-dependent", "address-and-port-dependent"],
            Enum.GetValues<NatMapping>().Select(NatClassifier.Name));
        Assert.Equal(["unknown", "none", "address-dependent", "address-and-port-dependent"], Enum.GetValues<NatFiltering>().Select(NatClassifier.Name));
        Assert.Equal("ipv6", NatClassifier.FamilyName(AddressFamily.InterNetworkV6));
    }
}
