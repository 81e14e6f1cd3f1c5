using System.Buffers.Binary;
using System.Net;
using Mobility.Protocol.Identity;

namespace Mobility.Protocol.Wire;

/// <summary>
/// Bounds-checked big-endian reader over one complete message (a datagram or a framed body).
/// Every read checks the remaining length first and throws <see cref="MalformedMessageException"/>
/// when the message is too short; nothing is allocated from a length that was not checked.
/// </summary>
public ref struct WireReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;

    public WireReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    public readonly int Position => _position;

    public readonly int Remaining => _buffer.Length - _position;

    public readonly ReadOnlySpan<byte> Consumed => _buffer[.._position];

    public readonly ReadOnlySpan<byte> Rest => _buffer[_position..];

    public byte ReadByte()
    {
        Need(1);
        return _buffer[_position++];
    }

    public ushort ReadUInt16()
    {
        Need(2);
        var v = BinaryPrimitives.ReadUInt16BigEndian(_buffer[_position..]);
        _position += 2;
        return v;
    }

    public uint ReadUInt32()
    {
        Need(4);
        var v = BinaryPrimitives.ReadUInt32BigEndian(_buffer[_position..]);
        _position += 4;
        return v;
    }

    public ulong ReadUInt64()
    {
        Need(8);
        var v = BinaryPrimitives.ReadUInt64BigEndian(_buffer[_position..]);
        _position += 8;
        return v;
    }

    public long ReadInt64() => unchecked((long)ReadUInt64());

    /// <summary>The leading format byte of a signed object (<paramref name="what"/>: "record", "removal"); any other than <paramref name="expected"/> is malformed.</summary>
    public void ReadFormat(byte expected, string what)
    {
        var format = ReadByte();
        if (format != expected)
        {
            throw new MalformedMessageException($"Unknown {what} format {format}.");
        }
    }

    /// <summary>
    /// The issue time of a signed record or removal: i64 Unix milliseconds, from 1970 to the end of
    /// year 9999 (the range of <see cref="DateTimeOffset"/>).
    /// </summary>
    public DateTimeOffset ReadIssuedAt()
    {
        var milliseconds = ReadInt64();
        if (milliseconds < 0 || milliseconds > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
        {
            throw new MalformedMessageException("Issue time out of range.");
        }

        return DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
    }

    public ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0)
        {
            throw new MalformedMessageException("Negative length.");
        }

        Need(count);
        var span = _buffer.Slice(_position, count);
        _position += count;
        return span;
    }

    public HostGuid ReadGuid() => HostGuid.FromBytes(ReadBytes(HostGuid.Size));

    /// <summary>Reads a family byte (4 or 6) then 4 or 16 address bytes.</summary>
    public IPAddress ReadAddress()
    {
        var family = ReadByte();
        return family switch
        {
            4 => new IPAddress(ReadBytes(4)),
            6 => new IPAddress(ReadBytes(16)),
            _ => throw new MalformedMessageException($"Unknown address family {family}."),
        };
    }

    /// <summary>Reads a one-byte length then that many bytes, refusing lengths over <paramref name="max"/>.</summary>
    public ReadOnlySpan<byte> ReadShortBytes(int max)
    {
        var length = ReadByte();
        if (length > max)
        {
            throw new MalformedMessageException($"Field of {length} bytes exceeds the limit of {max}.");
        }

        return ReadBytes(length);
    }

    /// <summary>Requires that every byte was consumed, except trailing zero padding when allowed.</summary>
    public readonly void EnsureEnd(bool allowZeroPadding)
    {
        if (_position == _buffer.Length)
        {
            return;
        }

        if (allowZeroPadding && !_buffer[_position..].ContainsAnyExcept((byte)0))
        {
            return;
        }

        throw new MalformedMessageException($"{_buffer.Length - _position} unexpected trailing bytes.");
    }

    private readonly void Need(int count)
    {
        if (count > _buffer.Length - _position)
        {
            throw new MalformedMessageException($"Truncated: needed {count} more bytes, {_buffer.Length - _position} left.");
        }
    }
}
