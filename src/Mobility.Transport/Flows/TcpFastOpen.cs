using System.Globalization;
using System.Net.Sockets;

namespace Mobility.Transport.Flows;

/// <summary>
/// Linux TCP Fast Open (RFC 7413) for the flows that carry a Resume: the client's connect returns at
/// once and its first write (the Resume and the data behind it) rides in the SYN; the listener takes
/// data in a SYN that has no cookie, because a TFO cookie is bound to the client's address and is
/// never valid right after a move. Safe only because the first message a listener acts on before
/// the TCP handshake completes is a Resume (MAC-checked, replay-checked by its counter); a
/// ClientHello that arrives that way is dropped (<see cref="IsHandshakePending"/>). Every call
/// here is a no-op on other systems or when the kernel refuses (then flows open as plain TCP).
/// </summary>
public static class TcpFastOpen
{
    // include/uapi/linux/tcp.h
    private const int TcpFastOpenOption = 23;        // TCP_FASTOPEN: listener, length of its queue of TFO requests
    private const int TcpFastOpenConnect = 30;       // TCP_FASTOPEN_CONNECT: connect() returns at once, the first write goes in the SYN
    private const int TcpFastOpenNoCookie = 34;      // TCP_FASTOPEN_NO_COOKIE: no cookie needed (client: none sent; listener: none required)
    private const int TcpInfoOption = 11;            // TCP_INFO: first byte is the socket's TCP state
    private const byte TcpSynReceived = 3;           // TCP_SYN_RECV
    private const byte TcpEstablished = 1;           // TCP_ESTABLISHED
    private const byte TcpiOptSynData = 32;          // TCPI_OPT_SYN_DATA: the SYN's data was acknowledged

    /// <summary>The sysctl that must allow it: bit 0x1 the client side, bit 0x2 the server side.</summary>
    public const string SysctlPath = "/proc/sys/net/ipv4/tcp_fastopen";

    /// <summary>net.ipv4.tcp_fastopen's server bit: without it the kernel ignores a listener's TCP_FASTOPEN.</summary>
    public const int ServerBit = 0x2;

    /// <summary>net.ipv4.tcp_fastopen's client bit (Debian's default, 1): without it TCP_FASTOPEN_CONNECT is refused.</summary>
    public const int ClientBit = 0x1;

    /// <summary>
    /// Listener: a queue of <paramref name="queueLength"/> Fast Open requests (SYNs with data whose
    /// handshake is not complete; beyond it a SYN's data is ignored and the client resends it after
    /// the handshake), no cookie required. False when the system does not take the options.
    /// </summary>
    public static bool TryEnableOnListener(Socket socket, int queueLength)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return queueLength > 0
            && TrySet(socket, TcpFastOpenOption, queueLength)
            && TrySet(socket, TcpFastOpenNoCookie, 1);
    }

    /// <summary>
    /// Client, before connect: the connect returns at once and the first write goes in the SYN,
    /// without a cookie. False when the system does not take the options (net.ipv4.tcp_fastopen
    /// without <see cref="ClientBit"/>): the connect is then a plain one.
    /// </summary>
    public static bool TryEnableOnConnect(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return TrySet(socket, TcpFastOpenNoCookie, 1) && TrySet(socket, TcpFastOpenConnect, 1);
    }

    /// <summary>
    /// True while an accepted socket's TCP handshake is not complete (TCP_SYN_RECV): it was accepted
    /// because its SYN carried data, and the client's address is not proven yet.
    /// </summary>
    public static bool IsHandshakePending(Socket socket)
    {
        Span<byte> info = stackalloc byte[8];
        return ReadInfo(socket, info) > 0 && info[0] == TcpSynReceived;
    }

    /// <summary>
    /// Connecting side: true when the SYN-ACK acknowledged the data sent in the SYN (TCP_INFO's
    /// TCPI_OPT_SYN_DATA), false when the handshake completed without it (the server's kernel does
    /// not take it, or a middlebox removed it), null before the handshake completed or off Linux.
    /// </summary>
    public static bool? SynDataAcknowledged(Socket socket)
    {
        // struct tcp_info: u8 state, ca_state, retransmits, probes, backoff, options.
        Span<byte> info = stackalloc byte[8];
        return ReadInfo(socket, info) >= 6 && info[0] == TcpEstablished ? (info[5] & TcpiOptSynData) != 0 : null;
    }

    /// <summary>
    /// The kernel's smoothed RTT of the connection (TCP_INFO's tcpi_rtt), or null when unknown: the
    /// resume race's time scale when no PING has been answered yet (a bulk transfer sends none).
    /// </summary>
    public static TimeSpan? SmoothedRtt(Socket socket)
    {
        // struct tcp_info: 8 bytes of u8 fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked,
        // lost, retrans, fackets, last_data_sent, last_ack_sent, last_data_recv, last_ack_recv, pmtu,
        // rcv_ssthresh, rtt (microseconds, at offset 68).
        Span<byte> info = stackalloc byte[72];
        if (ReadInfo(socket, info) < 72)
        {
            return null;
        }

        var micros = BitConverter.ToUInt32(info[68..]);
        return micros == 0 ? null : TimeSpan.FromMicroseconds(micros);
    }

    /// <summary>
    /// Bytes in the socket's write queue that the kernel has not sent (TCP_INFO's tcpi_notsent_bytes, Linux 4.6+), or
    /// null when unknown: what a lost path's last writes never put on the wire.
    /// </summary>
    public static long? NotSentBytes(Socket socket)
    {
        // struct tcp_info: ... u32 total_retrans (offset 100), u64 pacing_rate, max_pacing_rate, bytes_acked,
        // bytes_received, u32 segs_out, segs_in, notsent_bytes (offset 144).
        Span<byte> info = stackalloc byte[148];
        return ReadInfo(socket, info) < 148 ? null : BitConverter.ToUInt32(info[144..]);
    }

    /// <summary>The head of TCP_INFO into <paramref name="info"/>: the bytes read, or 0 (off Linux, closed, refused).</summary>
    private static int ReadInfo(Socket socket, Span<byte> info)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }

        try
        {
            return socket.GetRawSocketOption((int)SocketOptionLevel.Tcp, TcpInfoOption, info);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return 0;
        }
    }

    /// <summary>The value of net.ipv4.tcp_fastopen in this thread's network namespace, or null when it cannot be read.</summary>
    public static int? ReadSysctl()
    {
        try
        {
            var text = File.ReadAllText(SysctlPath).Trim();
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool TrySet(Socket socket, int option, int value)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        Span<byte> buffer = stackalloc byte[4];
        BitConverter.TryWriteBytes(buffer, value);
        try
        {
            socket.SetRawSocketOption((int)SocketOptionLevel.Tcp, option, buffer);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
