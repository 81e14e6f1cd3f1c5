using System.Buffers.Binary;
using System.Net;
using Mobility.Net.Netlink;

namespace Mobility.Net.Tests;

/// <summary>The rtnetlink reader on what a kernel sends and on hostile bytes (truncated, oversized, random).</summary>
public sealed class NetlinkRouteReaderTests
{
    [Fact]
    public void Reads_an_ipv6_address_with_its_flags_and_lifetimes()
    {
        var message = NetlinkRouteWriter.Address(false, 7, IPAddress.Parse("2001:db8::5"), 64,
            NetlinkRouteReader.IfaFTentative | NetlinkRouteReader.IfaFDadFailed, preferredLifetime: 0, validLifetime: 3600, sequence: 9);

        var e = Assert.Single(Read(message));

        Assert.Equal(NetlinkEventKind.AddressAdded, e.Kind);
        Assert.Equal(7, e.InterfaceIndex);
        Assert.Equal(IPAddress.Parse("2001:db8::5"), e.Address);
        Assert.Equal(64, e.PrefixLength);
        Assert.Equal(NetlinkRouteReader.IfaFTentative | NetlinkRouteReader.IfaFDadFailed, e.Flags);
        Assert.Equal(0u, e.PreferredLifetime);
        Assert.Equal(3600u, e.ValidLifetime);
        Assert.Equal(9u, e.Sequence);
    }

    [Fact]
    public void Reads_several_messages_of_one_datagram_and_prefers_ifa_local_for_ipv4()
    {
        // A point-to-point IPv4 address: IFA_LOCAL is ours, IFA_ADDRESS the peer's.
        var ptp = Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet, 32, 0, 0, 3, 0, 0, 0],
            Attribute(NetlinkRouteReader.IfaAddress, [10, 0, 0, 1]), Attribute(NetlinkRouteReader.IfaLocal, [10, 0, 0, 2]));
        byte[] datagram = [.. ptp, .. NetlinkRouteWriter.Address(true, 3, IPAddress.Parse("192.0.2.1"), 24, 0), .. NetlinkRouteWriter.Link(false, 3, 0x41), .. NetlinkRouteWriter.Done(4)];

        var events = Read(datagram);

        Assert.Equal([NetlinkEventKind.AddressAdded, NetlinkEventKind.AddressRemoved, NetlinkEventKind.LinkChanged, NetlinkEventKind.Done], events.Select(e => e.Kind));
        Assert.Equal(IPAddress.Parse("10.0.0.2"), events[0].Address);
        Assert.Equal(IPAddress.Parse("192.0.2.1"), events[1].Address);
        Assert.Equal(0x41u, events[2].LinkFlags);
        Assert.Equal(4u, events[3].Sequence);
    }

    [Fact]
    public void Ifa_flags_replaces_the_eight_bit_flags_and_unknown_attributes_types_and_families_are_skipped()
    {
        var message = Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet6, 64, 0x01, 0, 2, 0, 0, 0],
            Attribute(NetlinkRouteReader.IfaAddress, IPAddress.Parse("2001:db8::1").GetAddressBytes()),
            Attribute(3, "eth0\0"u8.ToArray()), // IFA_LABEL, 5 bytes: padded
            Attribute(NetlinkRouteReader.IfaFlags, U32(0x800)));
        var otherFamily = Message(NetlinkRouteReader.RtmNewAddr, [28, 20, 0, 0, 2, 0, 0, 0]);
        var route = Message(24, [2, 0, 0, 0]);

        var events = Read([.. message, .. otherFamily, .. route, .. Message(NetlinkRouteReader.NlmsgNoop, [])]);

        Assert.Equal(0x800u, Assert.Single(events).Flags);
    }

    [Fact]
    public void An_error_message_carries_its_errno()
    {
        var e = Assert.Single(Read(Message(NetlinkRouteReader.NlmsgError, [.. U32(unchecked((uint)-16)), .. new byte[16]])));
        Assert.Equal(NetlinkEventKind.Error, e.Kind);
        Assert.Equal(-16, e.Error);
    }

    [Fact]
    public void Every_truncation_of_a_valid_datagram_is_refused_or_read_without_an_undocumented_exception()
    {
        byte[] datagram = [.. NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::5"), 64, 0), .. NetlinkRouteWriter.Link(false, 2, 1)];
        for (var length = 0; length < datagram.Length; length++)
        {
            var events = new List<NetlinkEvent>();
            try
            {
                NetlinkRouteReader.Read(datagram.AsSpan(0, length), events);
            }
            catch (InvalidDataException)
            {
                Assert.Empty(events);
            }
        }
    }

    [Theory]
    [InlineData("message length below the header", 0, 15u)]
    [InlineData("message length past the datagram", 0, 4096u)]
    [InlineData("message length of 4 GiB", 0, uint.MaxValue)]
    [InlineData("attribute length below its header", 24, 3u)]
    [InlineData("attribute length past the message", 24, 200u)]
    public void Lengths_out_of_bounds_are_refused(string what, int offset, uint value)
    {
        var message = NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::5"), 64, 0);
        if (offset == 0)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(message, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(offset), (ushort)Math.Min(value, ushort.MaxValue));
        }

        var events = new List<NetlinkEvent>();
        Assert.Throws<InvalidDataException>(() => NetlinkRouteReader.Read(message, events));
        Assert.True(events.Count == 0, what);
    }

    [Fact]
    public void Wrong_address_sizes_prefix_lengths_and_short_structures_are_refused()
    {
        byte[][] bad =
        [
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet6, 64, 0, 0, 2, 0, 0, 0], Attribute(NetlinkRouteReader.IfaAddress, [1, 2, 3, 4])),
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet, 33, 0, 0, 2, 0, 0, 0], Attribute(NetlinkRouteReader.IfaLocal, [1, 2, 3, 4])),
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet, 24, 0, 0, 2, 0, 0, 0]),
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet, 24, 0, 0, 2, 0, 0, 0], Attribute(NetlinkRouteReader.IfaLocal, [1, 2, 3, 4]), Attribute(NetlinkRouteReader.IfaCacheInfo, [1, 2, 3, 4])),
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet, 24, 0, 0, 2, 0, 0, 0], Attribute(NetlinkRouteReader.IfaLocal, [1, 2, 3, 4]), Attribute(NetlinkRouteReader.IfaFlags, [1])),
            Message(NetlinkRouteReader.RtmNewAddr, [NetlinkRouteReader.AfInet6, 64, 0]),
            Message(NetlinkRouteReader.RtmNewLink, [0, 0, 1, 0, 2, 0, 0, 0]),
            Message(NetlinkRouteReader.NlmsgError, [1, 2]),
        ];
        foreach (var message in bad)
        {
            Assert.Throws<InvalidDataException>(() => NetlinkRouteReader.Read(message, []));
        }
    }

    [Fact]
    public void Random_bytes_never_throw_anything_but_the_documented_exception()
    {
        var random = new Random(1234);
        var valid = NetlinkRouteWriter.Address(false, 2, IPAddress.Parse("2001:db8::5"), 64, 0);
        for (var i = 0; i < 20_000; i++)
        {
            var input = i % 2 == 0 ? new byte[random.Next(0, 200)] : (byte[])valid.Clone();
            if (i % 2 == 0)
            {
                random.NextBytes(input);
            }
            else
            {
                input[random.Next(input.Length)] = (byte)random.Next(256);
            }

            try
            {
                NetlinkRouteReader.Read(input, []);
            }
            catch (InvalidDataException)
            {
            }
        }
    }

    [Fact]
    public void Dump_requests_ask_for_every_family()
    {
        var request = NetlinkRouteWriter.DumpRequest(NetlinkRouteReader.RtmGetAddr, 5);
        Assert.Equal(20, request.Length);
        Assert.Equal(20u, BinaryPrimitives.ReadUInt32LittleEndian(request));
        Assert.Equal(NetlinkRouteReader.RtmGetAddr, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4)));
        Assert.Equal(0x301, BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(6)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(8)));
        Assert.Throws<ArgumentOutOfRangeException>(() => NetlinkRouteWriter.DumpRequest(NetlinkRouteReader.RtmNewAddr, 1));
    }

    private static List<NetlinkEvent> Read(byte[] datagram)
    {
        var events = new List<NetlinkEvent>();
        NetlinkRouteReader.Read(datagram, events);
        return events;
    }

    private static byte[] Message(ushort type, byte[] header, params byte[][] attributes) =>
        NetlinkRouteWriter.Message(type, 0, 0, [.. header, .. attributes.SelectMany(a => a)]);

    private static byte[] Attribute(ushort type, byte[] value)
    {
        var attribute = new byte[(4 + value.Length + 3) & ~3];
        BinaryPrimitives.WriteUInt16LittleEndian(attribute, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(attribute.AsSpan(2), type);
        value.CopyTo(attribute, 4);
        return attribute;
    }

    private static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }
}
