using System.Net;
using System.Net.Sockets;
using Mobility.Net.Netlink;

namespace Mobility.Fuzz;

public static partial class Targets
{
    private static readonly Type[] NetlinkMalformed = [typeof(InvalidDataException)];

    /// <summary>The rtnetlink datagrams mobilityd's address monitor reads from its NETLINK_ROUTE socket.</summary>
    private static FuzzTarget Netlink() => new("netlink",
        "NetlinkRouteReader.Read (nlmsghdr, ifaddrmsg with IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_CACHEINFO, ifinfomsg, NLMSG_ERROR); InetDiag.ReadReply (sock_diag's inet_diag_msg) on the same bytes",
        NetlinkMalformed,
        input =>
        {
            // First the bytes as sock_diag's answer about one socket (its type, 20, is RTM_NEWADDR's number too, so the
            // route reader below rejects a genuine one): a verdict, never an exception.
            var answer = InetDiag.ReadReply(input, DiagClient, DiagServer, 7);
            Require(answer.Verdict != InetDiagVerdict.Owned || input.Length >= InetDiag.ReplyLength, "An owner read from a datagram shorter than a reply.");
            var events = new List<NetlinkEvent>();
            NetlinkRouteReader.Read(input, events);
            // Every message takes at least a header: no datagram yields more events than that allows.
            Require(events.Count <= input.Length / NetlinkRouteReader.HeaderLength, "More events than messages fit the datagram.");
            foreach (var e in events)
            {
                if (e.Kind is NetlinkEventKind.AddressAdded or NetlinkEventKind.AddressRemoved)
                {
                    Require(e.Address is not null, "An address event without an address.");
                    var bits = e.Address!.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
                    Require(e.PrefixLength <= bits, "A prefix longer than its address.");
                }
            }

            return FuzzOutcome.Accepted;
        },
        NetlinkSeeds);

    private static readonly IPEndPoint DiagClient = new(IPAddress.Loopback, 40000);
    private static readonly IPEndPoint DiagServer = new(IPAddress.Loopback, 7380);

    private static IEnumerable<FuzzSeed> NetlinkSeeds()
    {
        yield return new("valid-dump", SeedKit.Concat(
            NetlinkRouteWriter.Link(false, 1, 0x49, 1),
            NetlinkRouteWriter.Address(false, 1, IPAddress.Parse("127.0.0.1"), 8, NetlinkRouteReader.IfaFPermanent, sequence: 2),
            NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::10"), 64, 0, 1800, 3600, 2),
            NetlinkRouteWriter.Done(2)));
        yield return new("valid-ipv6-tentative", NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::11"), 64, NetlinkRouteReader.IfaFTentative));
        yield return new("valid-ipv6-deprecated-removed", SeedKit.Concat(
            NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::12"), 64, NetlinkRouteReader.IfaFDeprecated | NetlinkRouteReader.IfaFTemporary, 0, 600),
            NetlinkRouteWriter.Address(true, 2, IPAddress.Parse("2001:db8::12"), 64, 0)));
        yield return new("valid-error", NetlinkRouteWriter.Message(NetlinkRouteReader.NlmsgError, 0, 3, SeedKit.Concat(BitConverter.GetBytes(-16), new byte[16])));
        yield return new("edge-inet-diag-reply", InetDiag.Reply(DiagClient, DiagServer, 1, 1000, 4242, 7));
        yield return new("valid-inet-diag-enoent", InetDiag.ErrorReply(InetDiag.ENoEnt, 7));
        yield return new("edge-truncated", NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("192.0.2.1"), 24, 0)[..30]);
    }
}
