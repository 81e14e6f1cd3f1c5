using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The virtual addresses that name peers (docs/transparent.md, "Virtual addresses"). IPv6: derived
/// from the GUID alone, as HIP's HITs: the 32-bit unique-local prefix <see cref="Ipv6Prefix"/>
/// (fd6d:6f62::/32, "mob" in its global ID) followed by the first 96 bits of the GUID. IPv4: an address
/// of a configurable pool (a CIDR), assigned by <see cref="VirtualAddressMap"/>; the first choice is
/// the pool offset given by the GUID's first four bytes, so the same peer usually gets the same address
/// on every host.
/// </summary>
public sealed class VirtualAddressPool
{
    /// <summary>The IPv6 prefix of virtual addresses: fd6d:6f62::/32.</summary>
    public static readonly IPAddress Ipv6Prefix = IPAddress.Parse("fd6d:6f62::");

    public const int Ipv6PrefixLength = 32;

    /// <summary>GUID bits carried in a virtual IPv6 address (128 - 32).</summary>
    public const int Ipv6GuidBytes = 12;

    private VirtualAddressPool(uint network, int prefixLength)
    {
        Network = network;
        PrefixLength = prefixLength;
    }

    /// <summary>The pool's first address (host order).</summary>
    public uint Network { get; }

    public int PrefixLength { get; }

    /// <summary>Usable addresses: the pool without its first (network) and last (broadcast) address.</summary>
    public int Size => (int)((1u << (32 - PrefixLength)) - 2);

    public override string ToString() => $"{ToAddress(Network)}/{PrefixLength}";

    /// <summary>Parses an IPv4 CIDR from /8 to /30; the address must be the network's first (no host bits set).</summary>
    public static VirtualAddressPool Parse(string cidr)
    {
        var slash = cidr.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !IPAddress.TryParse(cidr.AsSpan(0, slash), out var address) || address.AddressFamily != AddressFamily.InterNetwork
            || !int.TryParse(cidr.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var length))
        {
            throw new FormatException($"Transparent:Ipv4Pool: '{cidr}' is not an IPv4 CIDR such as {TransparentOptions.DefaultIpv4Pool}.");
        }

        if (length is < 8 or > 30)
        {
            throw new FormatException($"Transparent:Ipv4Pool: a prefix from /8 to /30, not /{length}.");
        }

        var network = BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());
        if ((network & ~Mask(length)) != 0)
        {
            throw new FormatException($"Transparent:Ipv4Pool: '{cidr}' has host bits set; the pool is {ToAddress(network & Mask(length))}/{length}.");
        }

        return new VirtualAddressPool(network, length);
    }

    /// <summary>The virtual IPv6 address of <paramref name="guid"/>.</summary>
    public static IPAddress Ipv6Of(HostGuid guid)
    {
        Span<byte> bytes = stackalloc byte[16];
        Ipv6Prefix.TryWriteBytes(bytes, out _);
        Span<byte> raw = stackalloc byte[HostGuid.Size];
        guid.WriteTo(raw);
        raw[..Ipv6GuidBytes].CopyTo(bytes[4..]);
        return new IPAddress(bytes);
    }

    /// <summary>True when <paramref name="address"/> is in fd6d:6f62::/32.</summary>
    public static bool IsVirtualIpv6(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        return bytes[0] == 0xfd && bytes[1] == 0x6d && bytes[2] == 0x6f && bytes[3] == 0x62;
    }

    /// <summary>True when <paramref name="address"/> (IPv4, or IPv4-mapped IPv6) is a usable address of the pool.</summary>
    public bool Contains(IPAddress address) => TryOffsetOf(address, out _);

    /// <summary>The position of <paramref name="address"/> among the usable addresses (0 is the pool's second address).</summary>
    public bool TryOffsetOf(IPAddress address, out int offset)
    {
        offset = -1;
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            return false;
        }

        var value = BinaryPrimitives.ReadUInt32BigEndian(address.GetAddressBytes());
        if ((value & Mask(PrefixLength)) != Network)
        {
            return false;
        }

        var host = (long)(value - Network) - 1;
        if (host < 0 || host >= Size)
        {
            return false;
        }

        offset = (int)host;
        return true;
    }

    /// <summary>The usable address at <paramref name="offset"/> (0 to <see cref="Size"/> - 1).</summary>
    public IPAddress AddressAt(int offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(offset, Size);
        return ToAddress(Network + 1 + (uint)offset);
    }

    /// <summary>The first offset tried for <paramref name="guid"/>: its first four bytes modulo the pool's size.</summary>
    public int PreferredOffset(HostGuid guid)
    {
        Span<byte> raw = stackalloc byte[HostGuid.Size];
        guid.WriteTo(raw);
        return (int)(BinaryPrimitives.ReadUInt32BigEndian(raw) % (uint)Size);
    }

    private static uint Mask(int length) => length == 0 ? 0 : uint.MaxValue << (32 - length);

    private static IPAddress ToAddress(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }
}
