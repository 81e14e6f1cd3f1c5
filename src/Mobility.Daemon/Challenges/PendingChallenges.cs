using System.Net;
using Mobility.Protocol.Challenge;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Daemon.Challenges;

/// <summary>What became of a response handed to <see cref="PendingChallenges.Complete"/>.</summary>
public enum ResponseDisposition
{
    /// <summary>Accepted: it completed an outstanding challenge.</summary>
    Accepted,

    /// <summary>No outstanding challenge has its nonce (never sent, already answered: a replay, or expired).</summary>
    NotOutstanding,

    /// <summary>Its nonce is outstanding, but a check failed; the challenge keeps waiting for a good answer.</summary>
    Rejected,
}

/// <summary>
/// The nonces of outstanding challenges, shared by the challenger (which registers them) and the
/// control endpoint (which hands in responses). A response is accepted only if its nonce is
/// outstanding, it came from the challenged address and port, it names the challenger and the
/// expected GUID, the key hashes to that GUID, the signature is good and (by default) the signed
/// reached-at endpoint is the challenged one. Bounded by <see cref="ChallengeOptions.MaxOutstanding"/>.
/// </summary>
public sealed class PendingChallenges
{
    private readonly Dictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly int _max;
    private readonly bool _requireReachedAt;

    public PendingChallenges(Microsoft.Extensions.Options.IOptions<MobilitydOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _max = options.Value.Challenge.MaxOutstanding;
        _requireReachedAt = options.Value.Challenge.RequireReachedAtMatch;
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Registers a challenge; null when too many are outstanding.</summary>
    public Pending? Register(ChallengeRequest request, IPEndPoint target)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(target);
        var pending = new Pending(request, new IPEndPoint(Locator.Normalize(target.Address), target.Port), this);
        lock (_gate)
        {
            if (_pending.Count >= _max)
            {
                return null;
            }

            _pending.Add(pending.Key, pending);
        }

        return pending;
    }

    /// <summary>Checks a response that arrived from <paramref name="source"/> and completes its challenge when it passes.</summary>
    public ResponseDisposition Complete(ChallengeResponse response, IPEndPoint source, out string? rejection)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(source);
        rejection = null;
        Pending? pending;
        lock (_gate)
        {
            _pending.TryGetValue(Convert.ToBase64String(response.Nonce.Span), out pending);
        }

        if (pending is null)
        {
            return ResponseDisposition.NotOutstanding;
        }

        var from = new IPEndPoint(Locator.Normalize(source.Address), source.Port);
        var (outcome, detail) = Check(pending, response, from);
        if (outcome is { } failed)
        {
            rejection = detail;
            pending.Reject(failed, detail);
            return ResponseDisposition.Rejected;
        }

        lock (_gate)
        {
            _pending.Remove(pending.Key);
        }

        pending.Accept(response);
        return ResponseDisposition.Accepted;
    }

    private (ChallengeOutcome? Outcome, string Detail) Check(Pending pending, ChallengeResponse response, IPEndPoint from)
    {
        if (!from.Equals(pending.Target))
        {
            return (ChallengeOutcome.AddressMismatch, $"answer came from {from}, not from the challenged {pending.Target}");
        }

        if (response.Challenger != pending.Request.Challenger)
        {
            return (ChallengeOutcome.BadSignature, "answer is signed for another challenger");
        }

        if (response.Responder != pending.Request.Expected)
        {
            return (ChallengeOutcome.GuidMismatch, $"answered by {response.Responder}, not {pending.Request.Expected}");
        }

        if (!response.KeyMatchesResponder())
        {
            return (ChallengeOutcome.BadKey, "the public key does not hash to the GUID");
        }

        if (!response.Verify())
        {
            return (ChallengeOutcome.BadSignature, "the signature is not the key's");
        }

        if (_requireReachedAt && !response.ReachedAt.Equals(pending.Target))
        {
            return (ChallengeOutcome.AddressMismatch, $"the holder says the challenge reached it at {response.ReachedAt}, not at {pending.Target} (relayed)");
        }

        return (null, "");
    }

    private void Remove(Pending pending)
    {
        lock (_gate)
        {
            if (_pending.TryGetValue(pending.Key, out var current) && ReferenceEquals(current, pending))
            {
                _pending.Remove(pending.Key);
            }
        }
    }

    /// <summary>One outstanding challenge. Dispose removes it (after a timeout).</summary>
    public sealed class Pending : IDisposable
    {
        private readonly PendingChallenges _owner;
        private readonly TaskCompletionSource<ChallengeResponse> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _gate = new();

        internal Pending(ChallengeRequest request, IPEndPoint target, PendingChallenges owner)
        {
            Request = request;
            Target = target;
            _owner = owner;
            Key = Convert.ToBase64String(request.Nonce.Span);
        }

        public ChallengeRequest Request { get; }

        public IPEndPoint Target { get; }

        public HostGuid Expected => Request.Expected;

        public Task<ChallengeResponse> Response => _done.Task;

        /// <summary>The last refused answer, if any (reported when the challenge times out).</summary>
        public (ChallengeOutcome Outcome, string Detail)? LastRejection
        {
            get
            {
                lock (_gate)
                {
                    return field;
                }
            }

            private set
            {
                lock (_gate)
                {
                    field = value;
                }
            }
        }

        internal string Key { get; }

        internal void Reject(ChallengeOutcome outcome, string detail) => LastRejection = (outcome, detail);

        internal void Accept(ChallengeResponse response) => _done.TrySetResult(response);

        public void Dispose() => _owner.Remove(this);
    }
}
