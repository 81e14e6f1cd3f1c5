using System.Buffers.Binary;

namespace Mobility.Protocol.Tests.Records;

/// <summary>
/// Writes GNS record and removal bytes field by field, independently of the encoder under test, so
/// that tests can build records the encoder refuses to build (mismatched GUID, wrong context, bad
/// fields) and so that the layout is checked rather than restated.
/// </summary>
internal static class RecordBytes
{
    /// <summary>
    /// Each copy of <paramref name="good"/> with one bit flipped that <paramref name="decode"/> still
    /// accepts (a flip it refuses with <see cref="MalformedMessageException"/> is skipped), with that bit.
    /// </summary>
    public static IEnumerable<(int Bit, T Decoded)> DecodableBitFlips<T>(byte[] good, Func<byte[], T> decode)
    {
        for (var bit = 0; bit < good.Length * 8; bit++)
        {
            var bad = (byte[])good.Clone();
            bad[bit / 8] ^= (byte)(1 << (bit % 8));
            T decoded;
            try
            {
                decoded = decode(bad);
            }
            catch (MalformedMessageException)
            {
                continue;
            }

            yield return (bit, decoded);
        }
    }

    public static byte[] Body(
        HostGuid guid, ReadOnlySpan<byte> publicKey, ulong version, long issuedMs, uint ttl, string name,
        params (byte Kind, IPAddress Address, ushort Port)[] locators)
    {
        var bytes = new List<byte> { 1 };
        bytes.AddRange(guid.ToByteArray());
        bytes.AddRange(publicKey.ToArray());
        bytes.AddRange(U64(version));
        bytes.AddRange(U64(unchecked((ulong)issuedMs)));
        bytes.AddRange(U32(ttl));
        bytes.Add((byte)name.Length);
        bytes.AddRange(Encoding.ASCII.GetBytes(name));
        bytes.Add((byte)locators.Length);
        foreach (var (kind, address, port) in locators)
        {
            bytes.Add(kind);
            var raw = address.GetAddressBytes();
            bytes.Add(raw.Length == 4 ? (byte)4 : (byte)6);
            bytes.AddRange(raw);
            bytes.AddRange(U16(port));
        }

        return [.. bytes];
    }

    public static byte[] RemovalBody(HostGuid guid, ulong version, long issuedMs)
        => [1, .. guid.ToByteArray(), .. U64(version), .. U64(unchecked((ulong)issuedMs))];

    /// <summary>Body followed by <paramref name="key"/>'s signature over the length-prefixed context and the body.</summary>
    public static byte[] Signed(HostKey key, ReadOnlySpan<byte> context, byte[] body)
    {
        byte[] message = [(byte)context.Length, .. context, .. body];
        return [.. body, .. key.Sign(message)];
    }

    public static byte[] SignedRecord(HostKey key, byte[] body) => Signed(key, SigningContext.GnsRecord, body);

    public static byte[] U16(ushort value)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, value);
        return b;
    }

    public static byte[] U32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    public static byte[] U64(ulong value)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        return b;
    }
}
