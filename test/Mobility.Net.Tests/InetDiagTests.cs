using System.Buffers.Binary;
using System.Net;
using Mobility.Net.Netlink;

namespace Mobility.Net.Tests;

/// <summary>sock_diag's exact lookup of one TCP socket: the request's layout, the kernel's answers, and hostile bytes.</summary>
public sealed class InetDiagTests
{
    private static readonly IPEndPoint Client = new(IPAddress.Parse("127.0.0.1"), 40001);
    private static readonly IPEndPoint Server = new(IPAddress.Parse("127.0.0.2"), 7380);

    [Fact]
    public void The_request_names_the_socket_in_the_kernels_layout()
    {
        var request = new byte[InetDiag.RequestLength];

        Assert.Equal(72, InetDiag.WriteRequest(request, Client, Server, 0x01020304));

        Assert.Equal(72u, BinaryPrimitives.ReadUInt32LittleEndian(request));
        Assert.Equal(InetDiag.SockDiagByFamily, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4)));
        Assert.Equal(NetlinkRouteReader.NlmFRequest, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(6))); // not a dump
        Assert.Equal(0x01020304u, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(8)));
        Assert.Equal(NetlinkRouteReader.AfInet, request[16]);
        Assert.Equal(6, request[17]); // IPPROTO_TCP
        Assert.Equal(uint.MaxValue, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(20))); // every state
        Assert.Equal(40001, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(24)));
        Assert.Equal(7380, BinaryPrimitives.ReadUInt16BigEndian(request.AsSpan(26)));
        Assert.Equal([127, 0, 0, 1], request[28..32]);
        Assert.Equal(new byte[12], request[32..44]);
        Assert.Equal([127, 0, 0, 2], request[44..48]);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(60))); // any interface
        Assert.Equal(Enumerable.Repeat((byte)0xff, 8), request[64..72]); // INET_DIAG_NOCOOKIE
    }

    [Fact]
    public void An_ipv6_request_carries_both_addresses_whole()
    {
        var local = new IPEndPoint(IPAddress.Parse("2001:db8::1"), 5);
        var remote = new IPEndPoint(IPAddress.Parse("2001:db8::2"), 6);
        var request = new byte[InetDiag.RequestLength + 8];

        InetDiag.WriteRequest(request, local, remote, 1);

        Assert.Equal(NetlinkRouteReader.AfInet6, request[16]);
        Assert.Equal(local.Address.GetAddressBytes(), request[28..44]);
        Assert.Equal(remote.Address.GetAddressBytes(), request[44..60]);
        Assert.Throws<ArgumentException>(() => InetDiag.WriteRequest(new byte[71], local, remote, 1));
        Assert.Throws<ArgumentException>(() => InetDiag.WriteRequest(request, Client, remote, 1));
    }

    [Fact]
    public void A_connected_socket_held_by_a_process_gives_its_uid()
    {
        var answer = InetDiag.ReadReply(InetDiag.Reply(Client, Server, state: 1, uid: 1000, inode: 4242, sequence: 5), Client, Server, 5);

        Assert.Equal(new InetDiagAnswer(InetDiagVerdict.Owned, 1000), answer);
    }

    [Theory]
    [InlineData(1, 0u)] // established but no process holds it (an orphan)
    [InlineData(6, 0u)] // TIME_WAIT: listed with uid 0
    [InlineData(6, 99u)]
    [InlineData(12, 99u)] // a request socket (NEW_SYN_RECV)
    [InlineData(10, 99u)] // a listener
    public void A_socket_no_process_holds_has_no_owner_never_uid_0(byte state, uint inode)
    {
        var answer = InetDiag.ReadReply(InetDiag.Reply(Client, Server, state, uid: 0, inode, sequence: 5), Client, Server, 5);

        Assert.Equal(InetDiagVerdict.NoOwner, answer.Verdict);
    }

    [Fact]
    public void A_listener_the_kernel_fell_back_to_is_not_the_connection()
    {
        // No connection with both endpoints: the lookup finds the listener on the client's endpoint (peer: the wildcard).
        var listener = InetDiag.Reply(Client, new IPEndPoint(IPAddress.Any, 0), state: 1, uid: 0, inode: 77, sequence: 5);

        Assert.Equal(InetDiagVerdict.NoOwner, InetDiag.ReadReply(listener, Client, Server, 5).Verdict);
    }

    [Fact]
    public void Either_layout_of_an_ipv4_connection_is_the_same_socket()
    {
        // An IPv4 pair held by a dual-mode IPv6 socket (answered as AF_INET6, addresses IPv4-mapped), and an IPv4-mapped
        // pair held by an IPv4 socket (answered in IPv4's layout).
        var mappedClient = new IPEndPoint(Client.Address.MapToIPv6(), Client.Port);
        var mappedServer = new IPEndPoint(Server.Address.MapToIPv6(), Server.Port);

        Assert.Equal(new InetDiagAnswer(InetDiagVerdict.Owned, 7),
            InetDiag.ReadReply(InetDiag.Reply(mappedClient, mappedServer, 1, 7, 1, 5), Client, Server, 5));
        Assert.Equal(new InetDiagAnswer(InetDiagVerdict.Owned, 8),
            InetDiag.ReadReply(InetDiag.Reply(Client, Server, 1, 8, 1, 5), mappedClient, mappedServer, 5));
        // Another port is another socket.
        Assert.Equal(InetDiagVerdict.NoOwner,
            InetDiag.ReadReply(InetDiag.Reply(new IPEndPoint(Client.Address, 40002), Server, 1, 8, 1, 5), Client, Server, 5).Verdict);
    }

    [Fact]
    public void Enoent_is_no_owner_and_any_other_error_is_unknown()
    {
        Assert.Equal(new InetDiagAnswer(InetDiagVerdict.NoOwner, 0, InetDiag.ENoEnt), InetDiag.ReadReply(InetDiag.ErrorReply(InetDiag.ENoEnt, 3), Client, Server, 3));
        Assert.Equal(new InetDiagAnswer(InetDiagVerdict.Unknown, 0, 1), InetDiag.ReadReply(InetDiag.ErrorReply(1, 3), Client, Server, 3));
        Assert.Equal(InetDiagVerdict.Unknown, InetDiag.ReadReply(InetDiag.ErrorReply(95, 3), Client, Server, 3).Verdict);
    }

    [Fact]
    public void An_answer_to_another_request_is_skipped()
    {
        var stale = InetDiag.Reply(Client, Server, 1, 0, 1, sequence: 4);
        var current = InetDiag.Reply(Client, Server, 1, 1000, 1, sequence: 5);

        Assert.Equal(InetDiagVerdict.Owned, InetDiag.ReadReply([.. stale, .. current], Client, Server, 5).Verdict);
        Assert.Equal(1000u, InetDiag.ReadReply([.. stale, .. current], Client, Server, 5).UserId);
        Assert.Equal(InetDiagVerdict.Unknown, InetDiag.ReadReply(stale, Client, Server, 5).Verdict);
    }

    [Fact]
    public void Truncated_or_lying_replies_are_unknown_never_an_exception_or_an_owner()
    {
        var reply = InetDiag.Reply(Client, Server, 1, 1000, 1, 5);
        for (var length = 0; length < reply.Length; length++)
        {
            Assert.NotEqual(InetDiagVerdict.Owned, InetDiag.ReadReply(reply.AsSpan(0, length), Client, Server, 5).Verdict);
        }

        // The header says more than the datagram holds, less than a header, or a reply too short for inet_diag_msg.
        foreach (var claimed in new uint[] { uint.MaxValue, (uint)reply.Length + 1, 0, 15, 16, 40, (uint)reply.Length - 1 })
        {
            var lying = (byte[])reply.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(lying, claimed);
            Assert.NotEqual(InetDiagVerdict.Owned, InetDiag.ReadReply(lying, Client, Server, 5).Verdict);
        }

        // Another message type, another family.
        var wrongType = (byte[])reply.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(wrongType.AsSpan(4), NetlinkRouteReader.RtmNewLink);
        Assert.Equal(InetDiagVerdict.Unknown, InetDiag.ReadReply(wrongType, Client, Server, 5).Verdict);
        var wrongFamily = (byte[])reply.Clone();
        wrongFamily[16] = 1;
        Assert.Equal(InetDiagVerdict.Unknown, InetDiag.ReadReply(wrongFamily, Client, Server, 5).Verdict);
        // An error message too short for its error code.
        Assert.Equal(InetDiagVerdict.Unknown, InetDiag.ReadReply(NetlinkRouteWriter.Message(NetlinkRouteReader.NlmsgError, 0, 5, [1, 2]), Client, Server, 5).Verdict);
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        var random = new Random(17);
        var buffer = new byte[200];
        for (var i = 0; i < 20_000; i++)
        {
            var length = random.Next(buffer.Length);
            random.NextBytes(buffer.AsSpan(0, length));
            if (length >= 16 && random.Next(2) == 0)
            {
                // Often a plausible header, so the body is reached.
                BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)random.Next(length + 1));
                BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(8), 5);
            }

            _ = InetDiag.ReadReply(buffer.AsSpan(0, length), Client, Server, 5);
        }
    }
}
