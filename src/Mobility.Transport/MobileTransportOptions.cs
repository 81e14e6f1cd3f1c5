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

    /// <summary>A side that has sent nothing for this long sends a PING, so an idle path keeps proving itself.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A flow on which nothing arrived for this long is declared dead (4 missed keepalives).</summary>
    public TimeSpan DeadPathTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>A connection without a working flow for this long fails (Linux keeps a pathless MPTCP connection about 60 s).</summary>
    public TimeSpan PathlessTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait for each handshake message (a plain TCP peer that says nothing fails after this).</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Frames are sealed with ChaCha20-Poly1305 when true; when false they are only authenticated (both ends must allow it).</summary>
    public bool Encrypt { get; set; } = true;

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

        if (PathlessTimeout <= TimeSpan.Zero || HandshakeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(PathlessTimeout), "Timeouts must be positive.");
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

    internal new void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(FlowFactory);
        if (ReconnectBackoffMin <= TimeSpan.Zero || ReconnectBackoffMax < ReconnectBackoffMin)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectBackoffMax), "Back-off bounds must be positive and ordered.");
        }
    }
}

/// <summary>Options of the listening (server) side.</summary>
public sealed class MobileListenerOptions : MobileTransportOptions
{
    public IFlowListenerFactory ListenerFactory { get; set; } = TcpFlowListenerFactory.Instance;

    /// <summary>Which client GUIDs may connect (null: everyone). Called with the GUID the client proves in the handshake.</summary>
    public Func<HostGuid, bool>? AuthorizeClient { get; set; }

    /// <summary>Whether a client may ask for authenticated-but-unencrypted frames.</summary>
    public bool AllowAuthenticateOnly { get; set; }

    /// <summary>Flows in the handshake at once; more are closed at once (a flood of idle sockets cannot exhaust memory).</summary>
    public int MaxPendingHandshakes { get; set; } = 256;

    /// <summary>Established connections waiting for AcceptAsync; more are refused with Busy.</summary>
    public int AcceptBacklog { get; set; } = 512;

    internal new void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(ListenerFactory);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPendingHandshakes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(AcceptBacklog, 1);
    }
}
