using System.Collections.Immutable;
using System.Net;
using System.Net.Sockets;

namespace Mobility.Daemon.Nat;

/// <summary>How a NAT maps one inside endpoint to outside endpoints (RFC 4787 section 4.1, RFC 5780 section 4.3).</summary>
public enum NatMapping
{
    /// <summary>Not known: no answer, or nothing to compare the first answer with.</summary>
    Unknown,

    /// <summary>No translation: the GNS saw the socket's own address and port (a public address, or no NAT on the path).</summary>
    None,

    /// <summary>One outside endpoint for every destination: peers can reach a mapping another server saw (hole punching works).</summary>
    EndpointIndependent,

    /// <summary>Another outside endpoint per destination address (seen from GNS endpoints of different addresses).</summary>
    AddressDependent,

    /// <summary>Another outside endpoint per destination address and port (a "symmetric" NAT): only a relay helps.</summary>
    AddressAndPortDependent,
}

/// <summary>Which inbound packets a NAT lets through to a mapping (RFC 4787 section 5, RFC 5780 section 4.4).</summary>
public enum NatFiltering
{
    /// <summary>Not known: the GNS has no other port to answer from, or the first probe got no answer.</summary>
    Unknown,

    /// <summary>No translation and nothing filtered: an answer from a port the host never sent to came in.</summary>
    None,

    /// <summary>
    /// Behind a NAT, an answer from another port of the same server came in: the filter looks at the address only, or
    /// at nothing (endpoint-independent; telling the two apart needs a server with a second address).
    /// </summary>
    AddressDependent,

    /// <summary>Only the address and port a mapping was made for get in (Linux conntrack, most home routers).</summary>
    AddressAndPortDependent,
}

/// <summary>What one server endpoint answered to the probe socket (null: no answer).</summary>
public sealed record NatProbe(IPEndPoint Server, IPEndPoint? Observed);

/// <summary>
/// The raw answers of one check for one address family, all from one probe socket except the filtering probe, which
/// has its own (so that the only mapping the filter knows is the one towards the first server).
/// </summary>
/// <param name="Local">The probe socket's own address and port (the kernel's source address towards the first server), or null when unknown.</param>
/// <param name="First">The first GNS endpoint's answer: the reflexive address.</param>
/// <param name="OtherPort">The same server address at the other port it named (null: it has none).</param>
/// <param name="OtherAddresses">Other GNS endpoints of the family, at other addresses.</param>
/// <param name="FilterReceived">Whether the answer asked to come from the other port arrived (null: not tested).</param>
public sealed record NatFamilyProbes(
    AddressFamily Family,
    IPEndPoint? Local,
    NatProbe First,
    NatProbe? OtherPort,
    ImmutableArray<NatProbe> OtherAddresses,
    bool? FilterReceived);

/// <summary>The result of one check for one address family, as <c>mob status</c> and <c>mob netcheck</c> show it.</summary>
public sealed record NatReport(
    AddressFamily Family,
    IPEndPoint? Reflexive,
    IPEndPoint? Local,
    bool? BehindNat,
    NatMapping Mapping,
    NatFiltering Filtering,
    DateTimeOffset CheckedAt,
    IPEndPoint Server,
    string Detail)
{
    /// <summary>"ipv4" or "ipv6".</summary>
    public string FamilyName => NatClassifier.FamilyName(Family);
}

/// <summary>
/// Classifies a NAT from the probes' answers, as RFC 5780's tests do with a STUN server's alternate address and port:
/// no I/O, no clock (the check time is given), so every case is a unit test.
/// </summary>
public static class NatClassifier
{
    public static NatReport Classify(NatFamilyProbes probes, DateTimeOffset checkedAt)
    {
        ArgumentNullException.ThrowIfNull(probes);
        var server = probes.First.Server;
        if (probes.First.Observed is not { } reflexive)
        {
            return new NatReport(probes.Family, null, probes.Local, null, NatMapping.Unknown, NatFiltering.Unknown, checkedAt, server,
                $"no answer from {server}");
        }

        // RFC 5780 section 4.3 test I: the mapped address is the local one -> no NAT.
        bool? behind = probes.Local is { } local ? !local.Equals(reflexive) : null;
        var notes = new List<string>();
        var mapping = Mapping(probes, reflexive, behind, notes);
        var filtering = probes.FilterReceived switch
        {
            null => NatFiltering.Unknown,
            true => behind == false ? NatFiltering.None : NatFiltering.AddressDependent,
            false => NatFiltering.AddressAndPortDependent,
        };
        if (probes.FilterReceived is null)
        {
            notes.Add("filtering not tested: the GNS has no reflect port");
        }
        else if (filtering == NatFiltering.AddressDependent)
        {
            notes.Add("filtering may also be endpoint-independent: only a port change was tested");
        }

        return new NatReport(probes.Family, reflexive, probes.Local, behind, mapping, filtering, checkedAt, server, string.Join("; ", notes));
    }

    private static NatMapping Mapping(NatFamilyProbes probes, IPEndPoint reflexive, bool? behind, List<string> notes)
    {
        var otherAddresses = probes.OtherAddresses.Where(p => p.Observed is not null).ToArray();
        var otherPort = probes.OtherPort?.Observed;
        if (behind == false)
        {
            // The socket's own endpoint came back: nothing translates (a different answer elsewhere would be a path without a NAT to this one).
            return NatMapping.None;
        }

        if (otherPort is not null && !otherPort.Equals(reflexive))
        {
            // Test III differs from test I: another port of the same address got another mapping.
            return NatMapping.AddressAndPortDependent;
        }

        if (otherAddresses.Any(p => !p.Observed!.Equals(reflexive)))
        {
            if (otherPort is null)
            {
                notes.Add("mapping may be address-and-port-dependent: no other port of one server was compared");
            }

            return NatMapping.AddressDependent;
        }

        if (otherPort is not null || otherAddresses.Length > 0)
        {
            return NatMapping.EndpointIndependent;
        }

        notes.Add("mapping not tested: one GNS endpoint without a reflect port");
        return NatMapping.Unknown;
    }

    /// <summary>The kebab-case name used by the API and the CLI ("endpoint-independent", "address-and-port-dependent", ...).</summary>
    public static string Name(NatMapping mapping) => mapping switch
    {
        NatMapping.None => "none",
        NatMapping.EndpointIndependent => "endpoint-independent",
        NatMapping.AddressDependent => "address-dependent",
        NatMapping.AddressAndPortDependent => "address-and-port-dependent",
        _ => "unknown",
    };

    public static string Name(NatFiltering filtering) => filtering switch
    {
        NatFiltering.None => "none",
        NatFiltering.AddressDependent => "address-dependent",
        NatFiltering.AddressAndPortDependent => "address-and-port-dependent",
        _ => "unknown",
    };

    public static string FamilyName(AddressFamily family) => family == AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4";

    /// <summary>Whether two reports say the same thing about the NAT (the check time and notes aside): a change is logged.</summary>
    public static bool SameBehaviour(NatReport? a, NatReport? b)
        => a is not null && b is not null && Equals(a.Reflexive, b.Reflexive) && a.BehindNat == b.BehindNat && a.Mapping == b.Mapping
           && a.Filtering == b.Filtering;
}
