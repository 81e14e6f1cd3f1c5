using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Options;
using Mobility.Daemon.Peers;
using Mobility.Gns.Client;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Challenges;

/// <summary>A GNS claim that was not verified at the address, and why.</summary>
public sealed record RefusedClaim(HostGuid Guid, string Reason);

/// <summary>The answer of get_guid_from_ip: only <see cref="Verified"/> GUIDs are to be trusted.</summary>
public sealed record GuidsAtAddress(IPAddress Address, ImmutableArray<HostGuid> Verified, ImmutableArray<RefusedClaim> Refused, bool Truncated);

/// <summary>
/// get_guid_from_ip: the GUIDs the GNS reverse index lists for an address (claims anyone can make),
/// each challenged at that address (a proof). Used by the API and by the forwarder's decision
/// between a mobile and a plain connection to an address.
/// </summary>
/// <remarks>
/// Candidates are taken in this order, at most <see cref="ChallengeOptions.MaxReverseCandidates"/>:
/// the GUIDs this daemon has already verified at the address (<see cref="PeerBook"/>), then the GNS's
/// list in the GNS's rank (claims sent from the address itself first; docs/protocol.md, "Address
/// claims"). So neither keys whose GUIDs sort low nor an index overfilled by a flood can push a
/// known owner, or an owner that attested its address, out of the candidates.
/// </remarks>
public sealed class AddressClaims
{
    private readonly IGnsClient _gns;
    private readonly Challenger _challenger;
    private readonly PeerBook _peers;
    private readonly int _maxCandidates;

    public AddressClaims(IGnsClient gns, Challenger challenger, PeerBook peers, IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _gns = gns;
        _challenger = challenger;
        _peers = peers;
        _maxCandidates = options.Value.Challenge.MaxReverseCandidates;
    }

    /// <summary>
    /// Challenges the candidates for <paramref name="address"/> (see the remarks of <see cref="AddressClaims"/>),
    /// concurrently. Throws <see cref="GnsException"/> when the GNS cannot be asked.
    /// </summary>
    public async Task<GuidsAtAddress> VerifyAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        var normalized = Locator.Normalize(address);
        var claims = await _gns.ReverseAsync(normalized, cancellationToken).ConfigureAwait(false);
        var known = _peers.Snapshot().Where(p => p.VerifiedAt.Contains(normalized)).Select(p => p.Guid);
        var ranked = known.Concat(claims).Distinct().ToArray();
        var candidates = ranked.Take(_maxCandidates).ToArray();
        var verdicts = await Task.WhenAll(candidates.Select(g => _challenger.ChallengeAsync(normalized, g, cancellationToken))).ConfigureAwait(false);
        return new GuidsAtAddress(
            normalized,
            [.. verdicts.Where(v => v.Verified).Select(v => v.Guid)],
            [.. verdicts.Where(v => !v.Verified).Select(v => new RefusedClaim(v.Guid, v.Reason))],
            ranked.Length > _maxCandidates);
    }
}
