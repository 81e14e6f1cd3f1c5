using Mobility.Protocol.Transport;

namespace Mobility.Transport.Connections;

/// <summary>How the server answers a Resume for a connection it knows.</summary>
internal enum ResumeVerdict
{
    /// <summary>Valid MAC, fresh counter, a consistent receive position: switch to the new path.</summary>
    Accept,

    /// <summary>Not from the peer (no resume key): refused, the connection is untouched.</summary>
    BadMac,

    /// <summary>A counter not above the last accepted one (a replay): refused, the connection is untouched.</summary>
    Replayed,

    /// <summary>The authenticated peer claims a receive position it cannot have: the connection fails.</summary>
    Contradiction,
}

/// <summary>
/// The server's side of resumption: checks a Resume (MAC, counter strictly above every accepted
/// one, received offset within what was sent and not below what was acknowledged) or a Join (MAC
/// and counter only) and, when it is
/// accepted, rewinds the send state to what the client holds and writes the ResumeAck. Not
/// thread-safe: <see cref="Check"/> and <see cref="Accept"/> run under the connection's lock;
/// <see cref="VerifyMac"/> needs no lock.
/// </summary>
internal sealed class ResumeResponder(byte[] resumeKey, UInt128 token)
{
    /// <summary>The counter of the last accepted Resume.</summary>
    public ulong LastCounter { get; private set; }

    /// <summary>The MAC check (HMAC-SHA256), done before the connection's state is touched.</summary>
    public bool VerifyMac(ResumeRequest request) => request.VerifyMac(resumeKey);

    /// <summary>The verdict on a Resume whose MAC verified (<paramref name="macValid"/>).</summary>
    public ResumeVerdict Check(ResumeRequest request, bool macValid, SendState send)
    {
        if (!macValid)
        {
            return ResumeVerdict.BadMac;
        }

        if (request.Counter <= LastCounter)
        {
            return ResumeVerdict.Replayed;
        }

        if (request.Standby)
        {
            // A Join's receive position is only informational (it moves nothing), and an ACK sent
            // on the active path after it may arrive first: it is not held against the peer.
            return ResumeVerdict.Accept;
        }

        var received = (long)request.ReceivedOffset;
        return received < send.PeerReceived || received > send.MaxPeerReceived || request.ReceivedOffset > long.MaxValue
            ? ResumeVerdict.Contradiction
            : ResumeVerdict.Accept;
    }

    /// <summary>
    /// Accepts a Resume that <see cref="Check"/> accepted: applies the client's receive position,
    /// rewinds sending to it, and returns the ResumeAck bytes (our receive position, now announced).
    /// </summary>
    public byte[] Accept(ResumeRequest request, SendState send, ReceiveState receive)
    {
        LastCounter = request.Counter;
        send.ApplyPeerReceived((long)request.ReceivedOffset);
        send.RewindToPeerReceived();
        var ack = ResumeAck.Create(resumeKey, token, request.Counter, (ulong)receive.ReceivedValue);
        receive.MarkAcked(withConsumed: false);
        return ack.ToArray();
    }

    /// <summary>
    /// Accepts a Join that <see cref="Check"/> accepted: its counter is now the last accepted one (a
    /// replay of it, or of any earlier Resume or Join, is refused); the send state is untouched (the
    /// path stays a standby). Returns the JoinAck bytes.
    /// </summary>
    public byte[] AcceptJoin(ResumeRequest request, ReceiveState receive)
    {
        LastCounter = request.Counter;
        return ResumeAck.Create(resumeKey, token, request.Counter, (ulong)receive.ReceivedValue, standby: true).ToArray();
    }
}
