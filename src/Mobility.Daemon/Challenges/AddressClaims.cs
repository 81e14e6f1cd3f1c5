using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.Options;
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
public sealed class AddressClaims
{
    private readonly IGnsClient _gns;
    private readonly Challenger _challenger;
    private readonly int _maxCandidates;

    public AddressClaims(IGnsClient gns, Challenger challenger, IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _gns = gns;
        _challenger = challenger;
        _maxCandidates = options.Value.Challenge.MaxReverseCandidates;
    }

    /// <summary>
    /// Challenges every GUID the GNS index lists for <paramref name="address"/> (at most
    /// <see cref="ChallengeOptions.MaxReverseCandidates"/>, concurrently). Throws
    /// <see cref="GnsException"/> when the GNS cannot be asked.
    /// </summary>
    public async Task<GuidsAtAddress> VerifyAsync(IPAddress address, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        var normalized = Locator.Normalize(address);
        var claims = await _gns.ReverseAsync(normalized, cancellationToken).ConfigureAwait(false);
        var candidates = claims.Distinct().Take(_maxCandidates).ToArray();
        var verdicts = await Task.WhenAll(candidates.Select(g => _challenger.ChallengeAsync(normalized, g, cancellationToken))).ConfigureAwait(false);
        return new GuidsAtAddress(
            normalized,
            [.. verdicts.Where(v => v.Verified).Select(v => v.Guid)],
            [.. verdicts.Where(v => !v.Verified).Select(v => new RefusedClaim(v.Guid, v.Reason))],
            claims.Count > _maxCandidates);
    }
}
