using System.ComponentModel.DataAnnotations;

namespace Mobility.Gns.Claims;

/// <summary>
/// Bounds of the reverse (address) index: how many claims of each kind an address and a source may
/// hold, and how long an unattested claim lives. Bound from <c>Gns:Claims</c>. The rules are in
/// docs/protocol.md, "Address claims".
/// </summary>
public sealed class ClaimLimits
{
    /// <summary>
    /// Attested claims (records sent from the claimed address itself) kept per address. Only hosts that
    /// can send from an address attest it: the hosts at it, or the hosts behind one NAT that share it.
    /// With <see cref="MaxUnattestedPerAddress"/> it makes 32, what mobilityd challenges for one lookup
    /// (<c>Challenge:MaxReverseCandidates</c>), so every listed claim of an address is challenged; a
    /// 17th host sending from one address (a larger NAT) is not indexed under it.
    /// </summary>
    [Range(1, 1024)]
    public int MaxAttestedPerAddress { get; set; } = 16;

    /// <summary>
    /// Unattested claims (the record came from another address) kept per address. A host behind a NAT
    /// claims its private address this way, and so does a liar; they rank after every attested claim
    /// and a newcomer never displaces an incumbent. 16 leaves room for the hosts of a LAN that share
    /// a private address range while bounding what a flood of keys can add to one address.
    /// </summary>
    [Range(0, 1024)]
    public int MaxUnattestedPerAddress { get; set; } = 16;

    /// <summary>
    /// Unattested claims one source (an IPv4 address, an IPv6 /64) may hold across all addresses.
    /// A record has at most 16 locators, so 256 is sixteen full records: a NAT with a few hosts that
    /// each publish private addresses. A flood of keys from one source adds at most this many entries.
    /// </summary>
    [Range(0, 65_536)]
    public int MaxUnattestedPerSource { get; set; } = 256;

    /// <summary>
    /// A claim (attested or not) expires this long after the last record that carried it, or after
    /// the record's TTL if that is longer. mobilityd republishes every half TTL (30 s by default), so a
    /// live host keeps its claims; a claimant that stops refreshing (a forger of source addresses
    /// among them) frees its slot after 10 minutes.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan ClaimLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Throws <see cref="ArgumentException"/> when a limit is out of range.</summary>
    public void Validate()
    {
        var errors = new List<ValidationResult>();
        if (!Validator.TryValidateObject(this, new ValidationContext(this), errors, validateAllProperties: true))
        {
            throw new ArgumentException("Invalid claim limits: " + string.Join("; ", errors.Select(e => e.ErrorMessage)));
        }
    }
}
