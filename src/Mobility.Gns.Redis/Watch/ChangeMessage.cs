using System.Buffers.Binary;
using Mobility.Gns.Watch;
using Mobility.Protocol;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Gns.Redis.Watch;

/// <summary>
/// The pub/sub payload of a <see cref="RecordChange"/>: format (1), origin process id (16), GUID (20),
/// version (8, big-endian), kind (1: 0 removed, 1 record, 2 probe), then for a record its length (2,
/// big-endian) and its signed encoding. The origin lets a process skip its own changes, which it delivered
/// locally. A probe (GUID all zero, version = the probe's number) carries no change: a process publishes
/// probes to learn that its subscriptions are live (its own probes come back), every other process ignores them.
/// </summary>
internal static class ChangeMessage
{
    public const byte Format = 1;

    private const byte ProbeKind = 2;

    private const int HeaderSize = 1 + 16 + HostGuid.Size + 8 + 1;

    /// <summary>Largest message: a header and the largest record.</summary>
    public const int MaxSize = HeaderSize + 2 + GnsRecord.MaxEncodedSize;

    public static byte[] Encode(Guid origin, RecordChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        var record = change.Record is null ? [] : change.Record.Encoded.Span;
        var bytes = new byte[HeaderSize + (change.Record is null ? 0 : 2 + record.Length)];
        bytes[0] = Format;
        origin.TryWriteBytes(bytes.AsSpan(1, 16));
        change.Guid.WriteTo(bytes.AsSpan(17, HostGuid.Size));
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(17 + HostGuid.Size), change.Version);
        bytes[HeaderSize - 1] = change.Record is null ? (byte)0 : (byte)1;
        if (change.Record is not null)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(HeaderSize), (ushort)record.Length);
            record.CopyTo(bytes.AsSpan(HeaderSize + 2));
        }

        return bytes;
    }

    /// <summary>A probe of <paramref name="origin"/> numbered <paramref name="number"/>.</summary>
    public static byte[] EncodeProbe(Guid origin, ulong number)
    {
        var bytes = new byte[HeaderSize];
        bytes[0] = Format;
        origin.TryWriteBytes(bytes.AsSpan(1, 16));
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(17 + HostGuid.Size), number);
        bytes[HeaderSize - 1] = ProbeKind;
        return bytes;
    }

    /// <exception cref="MalformedMessageException">The bytes are not a change message.</exception>
    /// <returns>The origin, and the change, or null for a probe (numbered <c>Probe</c>).</returns>
    public static (Guid Origin, RecordChange? Change, ulong Probe) Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < HeaderSize || bytes.Length > MaxSize)
        {
            throw new MalformedMessageException($"A change message is {HeaderSize} to {MaxSize} bytes, not {bytes.Length}.");
        }

        if (bytes[0] != Format)
        {
            throw new MalformedMessageException($"Unknown change message format {bytes[0]}.");
        }

        var origin = new Guid(bytes.Slice(1, 16));
        var guid = HostGuid.FromBytes(bytes.Slice(17, HostGuid.Size));
        var version = BinaryPrimitives.ReadUInt64BigEndian(bytes[(17 + HostGuid.Size)..]);
        switch (bytes[HeaderSize - 1])
        {
            case 0:
                if (bytes.Length != HeaderSize)
                {
                    throw new MalformedMessageException("A removal carries no record.");
                }

                return (origin, new RecordChange(guid, null, version), 0);
            case 1:
                if (bytes.Length < HeaderSize + 2)
                {
                    throw new MalformedMessageException("Truncated record length.");
                }

                var length = BinaryPrimitives.ReadUInt16BigEndian(bytes[HeaderSize..]);
                if (length != bytes.Length - HeaderSize - 2)
                {
                    throw new MalformedMessageException($"The record length {length} does not match the {bytes.Length - HeaderSize - 2} bytes that follow.");
                }

                var record = GnsRecord.Decode(bytes[(HeaderSize + 2)..]);
                if (record.Guid != guid || record.Version != version)
                {
                    throw new MalformedMessageException("The record's GUID or version does not match the message.");
                }

                return (origin, new RecordChange(guid, record, version), 0);
            case ProbeKind:
                if (bytes.Length != HeaderSize)
                {
                    throw new MalformedMessageException("A probe carries no record.");
                }

                return (origin, null, version);
            default:
                throw new MalformedMessageException($"Unknown change kind {bytes[HeaderSize - 1]}.");
        }
    }
}
