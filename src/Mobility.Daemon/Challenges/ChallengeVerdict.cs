using System.Net;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Challenges;

/// <summary>Why a challenge ended as it did.</summary>
public enum ChallengeOutcome
{
    /// <summary>The holder of the GUID's key answered from the challenged address.</summary>
    Verified,

    /// <summary>No acceptable answer came back within the attempts (no daemon, a daemon with another key, or loss).</summary>
    Timeout,

    /// <summary>Answered from the address, but by another GUID.</summary>
    GuidMismatch,

    /// <summary>The answer's public key does not hash to the GUID it claims.</summary>
    BadKey,

    /// <summary>The answer's signature is not good.</summary>
    BadSignature,

    /// <summary>The answer came from, or says it reached, another address (a relayed answer).</summary>
    AddressMismatch,

    /// <summary>The request could not be sent (no control socket of that family, network unreachable).</summary>
    Unreachable,

    /// <summary>Too many challenges are outstanding; try again.</summary>
    Busy,
}

/// <summary>The result of challenging <see cref="Guid"/> at <see cref="Target"/>.</summary>
public sealed record ChallengeVerdict(
    HostGuid Guid,
    IPEndPoint Target,
    ChallengeOutcome Outcome,
    string Detail,
    TimeSpan RoundTrip,
    DateTimeOffset CheckedAt,
    bool Cached = false)
{
    public bool Verified => Outcome == ChallengeOutcome.Verified;

    /// <summary>The outcome as the API spells it: "verified", "timeout", "guid-mismatch", ...</summary>
    public string Reason => ReasonText(Outcome);

    public static string ReasonText(ChallengeOutcome outcome) => outcome switch
    {
        ChallengeOutcome.Verified => "verified",
        ChallengeOutcome.Timeout => "timeout",
        ChallengeOutcome.GuidMismatch => "guid-mismatch",
        ChallengeOutcome.BadKey => "bad-key",
        ChallengeOutcome.BadSignature => "bad-signature",
        ChallengeOutcome.AddressMismatch => "address-mismatch",
        ChallengeOutcome.Unreachable => "unreachable",
        ChallengeOutcome.Busy => "busy",
        _ => outcome.ToString().ToLowerInvariant(),
    };
}
