using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Mobility.Net.Netlink;

namespace Mobility.Daemon.Access;

/// <summary>
/// Who opened the other end of a loopback TCP connection: the kernel knows every TCP socket with its local and
/// remote endpoint and the uid that created it. The client's socket is the one whose local endpoint is our
/// connection's remote one and whose remote endpoint is our local one; its uid is the caller's (the same answer
/// identd gives), as long as a process still holds that socket. Asked through NETLINK_SOCK_DIAG's exact lookup
/// (<see cref="SocketDiagnostics"/>: the kernel finds the one socket); the tables /proc/net/tcp and /proc/net/tcp6
/// (the daemon's network namespace, read whole: their cost grows with every socket of the namespace) serve where
/// sock_diag cannot answer. A connection from another host or another network namespace has no such socket, and
/// a client that already closed its socket has no owner: their user is unknown.
/// </summary>
internal static class TcpSocketTable
{
    private const string Tcp4Table = "/proc/net/tcp";
    private const string Tcp6Table = "/proc/net/tcp6";

    // Set once the exact lookup found a socket: from then on its ENOENT means "no such socket".
    private static volatile bool s_lookupProven;

    /// <summary>The uid that owns the socket at <paramref name="client"/> connected to <paramref name="server"/>, or null when no local socket is.</summary>
    public static uint? FindOwner(IPEndPoint client, IPEndPoint server)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(server);
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        switch (FindOwnerByDiagnostics(client, server))
        {
            case { Verdict: InetDiagVerdict.Owned } owned:
                return owned.UserId;
            case { Verdict: InetDiagVerdict.NoOwner }:
                return null;
        }

        return FindOwnerInTables(client, server);
    }

    /// <summary>The same question answered from /proc/net/tcp and /proc/net/tcp6, read whole (where sock_diag cannot answer).</summary>
    internal static uint? FindOwnerInTables(IPEndPoint client, IPEndPoint server)
    {
        // The client's socket may be of the other family: a dual-stack listener sees an IPv4 client as
        // ::ffff:a.b.c.d, and a dual-mode IPv6 client (.NET's default socket) reaches an IPv4 listener
        // from ::ffff:127.0.0.1, listed in the IPv6 table.
        if (client.AddressFamily == AddressFamily.InterNetwork && server.AddressFamily == AddressFamily.InterNetwork)
        {
            return Find(Tcp4Table, client, server) ?? Find(Tcp6Table, Map(client), Map(server));
        }

        if (client.Address.IsIPv4MappedToIPv6 && server.Address.IsIPv4MappedToIPv6)
        {
            return Find(Tcp4Table, Unmap(client), Unmap(server)) ?? Find(Tcp6Table, client, server);
        }

        return Find(Tcp6Table, client, server);
    }

    /// <summary>
    /// The kernel's exact lookup. Its "no such socket" (ENOENT) is also what it answers while it has no TCP handler
    /// for sock_diag (module not loaded), so it counts only once this process saw the lookup find a socket: on the
    /// first ENOENT it asks for the other end of the connection, our own socket, which exists.
    /// </summary>
    private static InetDiagAnswer FindOwnerByDiagnostics(IPEndPoint client, IPEndPoint server)
    {
        if (client.AddressFamily != server.AddressFamily)
        {
            return new(InetDiagVerdict.Unknown);
        }

        var answer = SocketDiagnostics.Query(client, server);
        if (answer is { Verdict: InetDiagVerdict.NoOwner, Error: InetDiag.ENoEnt } && !s_lookupProven)
        {
            s_lookupProven = SocketDiagnostics.Query(server, client).Verdict == InetDiagVerdict.Owned;
            return s_lookupProven ? answer : new(InetDiagVerdict.Unknown);
        }

        if (answer.Verdict != InetDiagVerdict.Unknown && answer.Error == 0)
        {
            s_lookupProven = true;
        }

        return answer;
    }

    private static IPEndPoint Map(IPEndPoint endPoint) => new(endPoint.Address.MapToIPv6(), endPoint.Port);

    private static IPEndPoint Unmap(IPEndPoint endPoint) => new(endPoint.Address.MapToIPv4(), endPoint.Port);

    private static uint? Find(string table, IPEndPoint client, IPEndPoint server)
    {
        var local = Format(client);
        var remote = Format(server);
        foreach (var row in Rows(table))
        {
            if (string.Equals(row.Local, local, StringComparison.OrdinalIgnoreCase) && string.Equals(row.Remote, remote, StringComparison.OrdinalIgnoreCase))
            {
                return row.Owner;
            }
        }

        return null;
    }

    /// <summary>
    /// The rows of a /proc/net/{tcp,tcp6,udp,udp6} table (the same columns): local and remote endpoint as
    /// <see cref="Format"/> writes them, and the owner's uid (null when no process holds the socket). None when unreadable.
    /// </summary>
    internal static IEnumerable<(string Local, string Remote, uint? Owner)> Rows(string table)
    {
        IEnumerable<string> lines;
        try
        {
            lines = File.ReadLines(table);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            lines = [];
        }

        // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode ..."
        foreach (var line in lines.Skip(1))
        {
            var fields = line.Split(' ', 11, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 10)
            {
                // Inode 0: no process holds the socket any more (closed: an orphan, or a FIN_WAIT2/TIME_WAIT
                // mini-socket, which the kernel lists as uid 0). Its creator is unknown, so the caller is;
                // otherwise anyone could send a request, close at once and pass as root.
                yield return (fields[1], fields[2],
                    fields[9] != "0" && uint.TryParse(fields[7], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : null);
            }
        }
    }

    /// <summary>
    /// An endpoint as the kernel prints it: each 32-bit word of the address in network order, printed
    /// as a host-order number (%08X), then ':' and the port (%04X).
    /// </summary>
    internal static string Format(IPEndPoint endPoint)
    {
        var bytes = endPoint.Address.GetAddressBytes();
        var text = new System.Text.StringBuilder(bytes.Length * 2 + 5);
        for (var i = 0; i < bytes.Length; i += 4)
        {
            text.Append(BitConverter.ToUInt32(bytes, i).ToString("X8", CultureInfo.InvariantCulture));
        }

        return text.Append(':').Append(endPoint.Port.ToString("X4", CultureInfo.InvariantCulture)).ToString();
    }
}
