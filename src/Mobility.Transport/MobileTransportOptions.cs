using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Transport;
using Mobility.Transport.Flows;

namespace Mobility.Transport;

/// <summary>Options shared by both ends of a mobile connection. Defaults carry their reason.</summary>
public class MobileTransportOptions
{
    /// <summary>Clock for keepalives, timeouts and back-off (tests inject their own).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>
    /// Unacknowledged bytes a sender keeps for retransmission after a move; writers wait when it is
    /// full. 4 MiB covers about 30 ms at 1 Gbit/s, more than any loopback or LAN RTT, while 100
    /// connections still fit in 400 MiB in the worst case.
    /// </summary>
    public int MaxUnackedBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Bytes received but not yet read by the application that the peer may send (announced in the handshake).</summary>
    public int ReceiveWindow { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// While the connection is active (unacknowledged data, data moved within the last two
    /// <see cref="DeadPathTimeout"/>s, an idle keepalive awaiting its answer, a resume pending), a
    /// side that has sent nothing for this long sends a PING, so the path proves itself well within
    /// <see cref="DeadPathTimeout"/>.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// An idle connection costs nothing between keepalives: the client sends one PING after this
    /// long without receiving anything (×0.75–1.25 jitter, so thousands of connections opened together
    /// do not wake together) and probes at <see cref="KeepAliveInterval"/> until it is answered; the
    /// server only answers, and declares an idle flow dead after 2 × this + <see cref="DeadPathTimeout"/>
    /// without a frame. 20 s stays below common NAT and firewall idle timeouts (30 s and up) and
    /// makes 10,000 idle connections cost a daemon 500 PING/PONG pairs a second instead of 40,000
    /// timer ticks and 20,000 frames.
    /// </summary>
    public TimeSpan IdleKeepAliveInterval { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// On an active connection (and after an idle keepalive), a flow on which nothing arrived for
    /// this long is declared dead (4 missed keepalives); the time starts when the connection turns
    /// active, so a write on a long-idle connection over a dead path is noticed this long after it.
    /// </summary>
    public TimeSpan DeadPathTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Silent path death on an active connection: once a path has an RTT sample, it is declared dead
    /// after max(this, <see cref="DeadPathRttMultiplier"/> × its smoothed RTT) without a frame, and
    /// probed with a PING after a quarter of that without sending (<see cref="DeadPathTimeout"/> is
    /// the bound before the first sample, and the idle schedule is unchanged). 1 s: an upstream
    /// link that stops forwarding costs at most a second on a fast path, while a PONG delayed by
    /// a full socket buffer or a scheduling hiccup on a busy host (hundreds of ms) is not taken for a death.
    /// </summary>
    public TimeSpan DeadPathTimeoutMin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The active dead-path bound in smoothed RTTs (4, as the issue asks: a few lost probes, not one).</summary>
    public double DeadPathRttMultiplier { get; set; } = 4;

    /// <summary>
    /// Standby paths a connection keeps besides the active one (client: joins it opens from its
    /// other local addresses; server: joins it accepts, a further join replaces the oldest). 0 turns
    /// standby paths off. Each costs one TCP flow and a PING per idle keepalive interval.
    /// </summary>
    public int MaxStandbyPaths { get; set; } = 1;

    /// <summary>
    /// Direct paths (docs/nat.md, "Direct paths"): a connection sends the candidates its owner sets
    /// (<see cref="MobileConnection.SetDirectCandidates"/>) and takes the peer's; a client on a relayed
    /// path dials them and switches to a direct path that joins, keeping the relayed one as a standby
    /// (needs <see cref="MaxStandbyPaths"/> above 0). Off: no CANDIDATES frame is sent and those
    /// received are ignored.
    /// </summary>
    public bool DirectPaths { get; set; } = true;

    /// <summary>How long one direct attempt (its dials over all of the peer's candidates) may take: 3 s, a few SYN retransmissions.</summary>
    public TimeSpan DirectAttemptTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Pause after a failed direct attempt (or a lost direct path) before the next, doubled per failure up to
    /// <see cref="DirectRetryMax"/>, × U(0.5, 1.5): 2 s, then at most every 5 minutes a relayed connection
    /// tries again (new candidates from the peer start over at once).
    /// </summary>
    public TimeSpan DirectRetryMin { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest pause between direct attempts (see <see cref="DirectRetryMin"/>).</summary>
    public TimeSpan DirectRetryMax { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A connection without a working flow for this long fails (Linux keeps a pathless MPTCP connection about 60 s).</summary>
    public TimeSpan PathlessTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait for each handshake message (a plain TCP peer that says nothing fails after this).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Datagrams each direction may hold queued (to send, or received and not yet read); more are
    /// dropped and counted. 256 covers a burst of small datagrams (DNS, RTP) across one scheduling delay.
    /// </summary>
    public int DatagramQueueLength { get; set; } = 256;

    /// <summary>
    /// Payload bytes each direction may hold queued; more are dropped and counted. 1 MiB holds 256
    /// full-MTU datagrams several times over and bounds what a datagram flood costs a connection.
    /// </summary>
    public int DatagramQueueBytes { get; set; } = 1024 * 1024;

    /// <summary>Frames are sealed with ChaCha20-Poly1305 when true; when false they are only authenticated (both ends must allow it).</summary>
    public bool Encrypt { get; set; } = true;

    /// <summary>
    /// TCP Fast Open for resumes (docs/transport.md, "Resume: the first flight"): the client opens a
    /// resume flow so that its Resume and the data behind it ride in the SYN (no cookie: a cookie is
    /// bound to the address the client just left), and the listener takes such SYNs. New connections
    /// never use it. On Linux only; the listener side also needs net.ipv4.tcp_fastopen's server bit
    /// (0x2), which the transport never sets. False: plain connects, and a listener that takes no data
    /// in a SYN.
    /// </summary>
    public bool FastOpen { get; set; } = true;

    /// <summary>
    /// Call backs (docs/transport.md, "Call back"): a server whose own address changed opens a flow from its new
    /// address to its client's listener and sends a CallBack (MAC'd with the session's resume key), and the client
    /// resumes on that flow, without waiting for the GNS to push the server's new endpoint. Server: dial (needs the
    /// listener's <see cref="MobileListenerOptions.PunchTargetLocator"/> for the client's listener endpoints);
    /// client: act on call backs that reach a listener told of its connector (<see cref="MobileListener.AcceptCallBacksFor"/>).
    /// Off: neither.
    /// </summary>
    public bool CallBack { get; set; } = true;

    /// <summary>
    /// Connection reversal (docs/transport.md, "Connection reversal"): a server whose connection runs through a relay
    /// dials its client's published listener endpoints (a Host or Observed locator of the client's record, from the
    /// listener's <see cref="MobileListenerOptions.PunchTargetLocator"/>) from an ephemeral port and sends a Reverse
    /// (MAC'd with the session's resume key); the client answers with a Join on that flow, which becomes the direct
    /// path, the relayed one staying as a standby. Server: dial (needs <see cref="DirectPaths"/>, standby paths and
    /// the locator); client: join on the flows that reach a listener told of its connector
    /// (<see cref="MobileListener.AcceptCallBacksFor"/>). Off: neither.
    /// </summary>
    public bool ConnectionReversal { get; set; } = true;

    internal void Validate()
    {
        if (MaxUnackedBytes < TransportConstants.MaxFramePayload)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxUnackedBytes), $"At least {TransportConstants.MaxFramePayload}.");
        }

        if (ReceiveWindow < TransportConstants.MinReceiveWindow || ReceiveWindow > TransportConstants.MaxReceiveWindow)
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveWindow), $"Between {TransportConstants.MinReceiveWindow} and {TransportConstants.MaxReceiveWindow}.");
        }

        if (KeepAliveInterval <= TimeSpan.Zero || DeadPathTimeout <= KeepAliveInterval)
        {
            throw new ArgumentOutOfRangeException(nameof(DeadPathTimeout), "KeepAliveInterval must be positive and below DeadPathTimeout.");
        }

        if (DeadPathTimeoutMin <= TimeSpan.Zero || !(DeadPathRttMultiplier >= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(DeadPathTimeoutMin), "DeadPathTimeoutMin must be positive and DeadPathRttMultiplier at least 1.");
        }

        if (MaxStandbyPaths is < 0 or > 8)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxStandbyPaths), "Between 0 and 8.");
        }

        if (DirectAttemptTimeout <= TimeSpan.Zero || DirectRetryMin <= TimeSpan.Zero || DirectRetryMax < DirectRetryMin)
        {
            throw new ArgumentOutOfRangeException(nameof(DirectRetryMin), "DirectAttemptTimeout and DirectRetryMin must be positive and DirectRetryMax at least DirectRetryMin.");
        }

        if (IdleKeepAliveInterval < KeepAliveInterval)
        {
            throw new ArgumentOutOfRangeException(nameof(IdleKeepAliveInterval), "IdleKeepAliveInterval must be at least KeepAliveInterval.");
        }

        if (PathlessTimeout <= TimeSpan.Zero || HandshakeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(PathlessTimeout), "Timeouts must be positive.");
        }

        if (DatagramQueueLength < 1 || DatagramQueueBytes < TransportConstants.MaxDatagramPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(DatagramQueueBytes), $"DatagramQueueLength must be at least 1 and DatagramQueueBytes at least {TransportConstants.MaxDatagramPayload} (one largest datagram).");
        }

        ArgumentNullException.ThrowIfNull(TimeProvider);
        ArgumentNullException.ThrowIfNull(LoggerFactory);
    }
}

/// <summary>Options of the connecting (client) side.</summary>
public sealed class MobileConnectionOptions : MobileTransportOptions
{
    public IFlowFactory FlowFactory { get; set; } = TcpFlowFactory.Instance;

    /// <summary>Local address new flows are opened from (null: the OS chooses). Changed later by NotifyLocalAddressChanged.</summary>
    public IPAddress? LocalAddress { get; set; }

    /// <summary>Longest time for one resume attempt: TCP connect plus Resume/ResumeAck.</summary>
    public TimeSpan ResumeAttemptTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest wait for a locator lookup before falling back to the last known endpoints.</summary>
    public TimeSpan LocateTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>First back-off after a failed resume attempt; doubles up to <see cref="ReconnectBackoffMax"/>, with ±50% jitter.</summary>
    public TimeSpan ReconnectBackoffMin { get; set; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan ReconnectBackoffMax { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A resume attempt races its flow connects (the peer's endpoints, then each unanswered one again):
    /// the next starts when none has connected after max(2 x the measured RTT, this). 50 ms keeps a
    /// connect on a fast path from being doubled for nothing, while a lost SYN costs this instead of
    /// the kernel's 1 s initial retransmission timeout.
    /// </summary>
    public TimeSpan ConnectRaceDelayMin { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Upper bound of the race delay (a very slow path still races before the kernel retransmits its SYN at 1 s).</summary>
    public TimeSpan ConnectRaceDelayMax { get; set; } = TimeSpan.FromMilliseconds(750);

    internal new void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(FlowFactory);
        if (ReconnectBackoffMin <= TimeSpan.Zero || ReconnectBackoffMax < ReconnectBackoffMin)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectBackoffMax), "Back-off bounds must be positive and ordered.");
        }

        if (ConnectRaceDelayMin <= TimeSpan.Zero || ConnectRaceDelayMax < ConnectRaceDelayMin)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectRaceDelayMax), "Race delay bounds must be positive and ordered.");
        }
    }
}

/// <summary>Options of the listening (server) side.</summary>
public sealed class MobileListenerOptions : MobileTransportOptions
{
    public IFlowListenerFactory ListenerFactory { get; set; } = TcpFlowListenerFactory.Instance;

    /// <summary>
    /// Opens this end's side of a simultaneous open that a client asked for with a PUNCH frame (from the
    /// port of the reflexive candidate sent with <see cref="MobileConnection.SetDirectCandidates"/>);
    /// its <see cref="IFlowFactory.CanPunch"/> false: PUNCH frames are ignored. Also opens this end's call
    /// backs (<see cref="MobileTransportOptions.CallBack"/>: a first flight from the listener's port).
    /// </summary>
    public IFlowFactory PunchFlowFactory { get; set; } = TcpFlowFactory.Instance;

    /// <summary>
    /// Where this end's punch SYNs may go: a PUNCH frame makes this end connect to the client's reflexive
    /// candidates, which the client names itself, so with a locator set only those whose address is one
    /// of the client's endpoints the locator returns (mobilityd: the client's GNS record, its Host and
    /// Observed locators) are tried, and a punch without one is ignored. Null: every reflexive candidate
    /// of the (authenticated) client is tried. Also where a call back goes (<see cref="MobileTransportOptions.CallBack"/>):
    /// the client's endpoints it returns (looked up when the connection starts) and the client's old address at their
    /// ports; null: no call back (the client's listener port is not known).
    /// </summary>
    public IPeerLocator? PunchTargetLocator { get; set; }

    /// <summary>Which client GUIDs may connect (null: everyone). Called with the GUID the client proves in the handshake.</summary>
    public Func<HostGuid, bool>? AuthorizeClient { get; set; }

    /// <summary>Whether a client may ask for authenticated-but-unencrypted frames.</summary>
    public bool AllowAuthenticateOnly { get; set; }

    // Handshakes under flood (docs/transport.md, "Admission"). A flow is admitted at accept; until
    // its first message it is "unidentified"; a Resume then leaves at once (served ahead of every new
    // handshake), a ClientHello takes a slot (or waits for one) until its ClientFinish.

    /// <summary>
    /// ClientHellos in the handshake at once (the server has signed, holds an ephemeral key and waits
    /// for ClientFinish); more wait for a slot. Bounds the signatures and key state a flood can cost.
    /// </summary>
    public int MaxPendingHandshakes { get; set; } = 256;

    /// <summary>
    /// Accepted flows beyond the slots: unidentified flows and hellos waiting for a slot. A legitimate
    /// burst (thousands of connections or resumes from one daemon after a move) queues here instead of
    /// being reset. At this bound (plus the slots) a new flow evicts the oldest unidentified flow
    /// rather than being reset, so idle sockets from any number of sources only push each other out: a
    /// genuine client sends its first message within one round trip of the accept. Each admitted flow
    /// costs one descriptor; each must still finish within <see cref="MobileTransportOptions.HandshakeTimeout"/>
    /// of its accept. Only when every admitted flow has spoken are new ones reset.
    /// </summary>
    public int MaxQueuedHandshakes { get; set; } = 4096;

    /// <summary>
    /// Slots one source may hold (an IPv4 address, or an IPv6 /64: one subscriber holds a whole /64);
    /// its further hellos wait, and freed slots go to the waiting sources in turn. 32 lets one daemon
    /// open about 600 connections a second at a 50 ms round trip, while eight sources are needed to
    /// hold all 256 slots.
    /// </summary>
    public int MaxPendingHandshakesPerSource { get; set; } = 32;

    /// <summary>
    /// From this many hellos holding or waiting for a slot on, a ClientHello without a valid cookie is
    /// answered with a CookieReply and its flow closed: no signature, no key, no slot, no descriptor.
    /// The client retries once on a new flow with the cookie (one more round trip and TCP connect).
    /// Half the slots: below, handshakes cost one round trip as before.
    /// </summary>
    public int CookieLoadThreshold { get; set; } = 128;

    /// <summary>
    /// The cookie secret is replaced this often (the previous one still verifies), so a cookie is good
    /// for two to four minutes; the same as WireGuard's cookie secret.
    /// </summary>
    public TimeSpan CookieSecretLifetime { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// When a hello has to wait for a slot, the slot holder that has waited longest for its
    /// ClientFinish is cut if it has waited at least this long: a genuine client answers a ServerHello
    /// within one round trip and one signature. 250 ms is four 60 ms intercontinental round trips; a
    /// slower client is only cut while all slots are held and others wait.
    /// </summary>
    public TimeSpan HandshakeFinishGrace { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Listen backlog: connections the kernel completes before they are accepted (Linux caps it at
    /// <c>net.core.somaxconn</c>, 4096 by default since 5.4). A full backlog drops SYNs, so clients
    /// retry (with <c>tcp_abort_on_overflow = 0</c>) rather than being reset.
    /// </summary>
    public int ListenBacklog { get; set; } = 4096;

    /// <summary>
    /// With <see cref="MobileTransportOptions.FastOpen"/>: SYNs with data (Resumes in a first flight)
    /// the kernel takes before their handshake completes; beyond it a SYN's data is ignored and the
    /// client's kernel resends it after the handshake (half a round trip later, nothing lost). Each
    /// holds a child socket before its address is proven, so it is bounded apart from the backlog; 256
    /// is the whole daemon moving at once with room to spare.
    /// </summary>
    public int FastOpenQueue { get; set; } = 256;

    /// <summary>Established connections waiting for AcceptAsync; more are refused with Busy.</summary>
    public int AcceptBacklog { get; set; } = 512;

    internal new void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(ListenerFactory);
        ArgumentNullException.ThrowIfNull(PunchFlowFactory);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingHandshakes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxQueuedHandshakes, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingHandshakesPerSource, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(CookieLoadThreshold, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(CookieSecretLifetime, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(HandshakeFinishGrace, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(ListenBacklog, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(AcceptBacklog, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(FastOpenQueue, 1);
    }
}
