using System.Net;
using Microsoft.Extensions.Logging;
using Mobility.Transport.Flows;

namespace Mobility.Transport.Connections;

/// <summary>
/// One connect of a resume race: a peer endpoint, from a local source address (null: the OS chooses by
/// its routes); <paramref name="OtherSource"/> when that is one of the host's other addresses, not the
/// one new flows come from.
/// </summary>
internal readonly record struct ConnectCandidate(IPAddress? Source, IPEndPoint Endpoint, bool OtherSource = false)
{
    public override string ToString() => OtherSource ? $"{Endpoint} from {Source}" : Endpoint.ToString();
}

/// <summary>
/// Which local addresses a resume starts from. A host with several usable addresses (two interfaces)
/// races its resume flows from each of them, not only from the address new flows come from (the
/// default route's, when the OS chooses): an upstream that stops forwarding raises no address event,
/// so after a silent death the address of the dead path is tried last and another interface first.
/// </summary>
internal sealed partial class PathSupervisor
{
    /// <summary>
    /// Local source addresses one attempt races per peer endpoint (the preferred one and up to three
    /// others): each costs a TCP connect, staggered by the race delay, so a host with many addresses
    /// (IPv6 privacy addresses) does not open a flow from every one.
    /// </summary>
    public const int MaxRacedSources = 4;

    // Guarded by _gate: the local address of the active path that died silently, tried last until a
    // resume succeeds (its upstream may be what stopped forwarding).
    private IPAddress? _suspectSource;

    /// <summary>
    /// The connects of one attempt, in order: for each peer endpoint, the preferred source (the local
    /// address new flows come from; null: the OS chooses), then every other usable local address of the
    /// endpoint's family (from <see cref="OnLocalAddresses"/>), at most <see cref="MaxRacedSources"/>.
    /// A source that is the address of a path that died silently goes last for its endpoint; so does
    /// the OS's choice when the kernel routes from that address (asked through
    /// <see cref="IFlowFactory.SourceAddressFor"/>, which also keeps that address from being raced twice).
    /// </summary>
    internal static List<ConnectCandidate> Candidates(IReadOnlyList<IPEndPoint> endpoints, IPAddress? preferred, IReadOnlyList<IPAddress> locals,
        IPAddress? suspect, Func<IPEndPoint, IPAddress?> routeSource)
    {
        var candidates = new List<ConnectCandidate>(endpoints.Count * Math.Min(MaxRacedSources, locals.Count + 1));
        foreach (var endpoint in endpoints)
        {
            var family = Plain(endpoint.Address).AddressFamily;
            var chosen = preferred ?? (locals.Count == 0 ? null : routeSource(endpoint) is { } routed ? Plain(routed) : null);
            var sources = new List<IPAddress?>(MaxRacedSources) { preferred };
            foreach (var local in locals)
            {
                if (sources.Count == MaxRacedSources)
                {
                    break;
                }

                if (local.AddressFamily == family && !local.Equals(chosen) && !sources.Contains(local))
                {
                    sources.Add(local);
                }
            }

            if (suspect is not null)
            {
                // Stable: the others keep the host's order, the suspect (and the OS's choice of it) goes last.
                var suspected = sources.Where(s => (s ?? chosen) is { } address && address.Equals(suspect)).ToList();
                sources.RemoveAll(suspected.Contains);
                sources.AddRange(suspected);
            }

            candidates.AddRange(sources.Select(s => new ConnectCandidate(s, endpoint, !Equals(s, preferred))));
        }

        return candidates;
    }

    /// <summary>The candidates of an attempt on <paramref name="endpoints"/> from what the supervisor knows now.</summary>
    private List<ConnectCandidate> CandidatesFor(IReadOnlyList<IPEndPoint> endpoints, IPAddress? preferred)
    {
        IPAddress[] locals;
        IPAddress? suspect;
        lock (_gate)
        {
            locals = _localAddresses;
            suspect = _suspectSource;
        }

        var candidates = Candidates(endpoints, preferred, locals, suspect, _options.FlowFactory.SourceAddressFor);
        if (candidates.Any(c => c.OtherSource))
        {
            SourcesLog.Racing(_logger, _connection.Token, string.Join(", ", candidates), suspect);
        }

        return candidates;
    }

    /// <summary>The active path from <paramref name="deadSource"/> died silently: later attempts try other local addresses first.</summary>
    private void SuspectSource(IPAddress? deadSource)
    {
        lock (_gate)
        {
            _suspectSource = deadSource is null ? null : Plain(deadSource);
        }
    }

    /// <summary>A resume succeeded: no local address is suspect any more.</summary>
    private void ClearSuspectSource()
    {
        lock (_gate)
        {
            _suspectSource = null;
        }
    }

    private static partial class SourcesLog
    {
        [LoggerMessage(9600, LogLevel.Debug, "Connection {Token:x32}: racing the resume from several local addresses: {Candidates} (silently dead: {Suspect})")]
        public static partial void Racing(ILogger logger, UInt128 token, string candidates, IPAddress? suspect);
    }
}
