using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Mobility.Protocol.Identity;

namespace Mobility.Protocol.Wire;

/// <summary>
/// Big-endian writer into a caller-provided span. Throws <see cref="InvalidOperationException"/>
/// when the span is too small, which is a programming error (sizes are computed up front).
/// </summary>
public ref struct WireWriter
{
    private readonly Span<byte> _buffer;
    private int _position;

    public WireWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    public readonly int Position => _position;

    public readonly Span<byte> Written => _buffer[.._position];

    public void WriteByte(byte value)
    {
        Need(1);
        _buffer[_position++] = value;
    }

    public void WriteUInt16(ushort value)
    {
        Need(2);
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_position..], value);
        _position += 2;
    }

    public void WriteUInt32(uint value)
    {
        Need(4);
        BinaryPrimitives.WriteUInt32BigEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void WriteUInt64(ulong value)
    {
        Need(8);
        BinaryPrimitives.WriteUInt64BigEndian(_buffer[_position..], value);
        _position += 8;
    }

    public void WriteInt64(long value) => WriteUInt64(unchecked((ulong)value));

    public void WriteBytes(ReadOnlySpan<byte> bytes)
    {
        Need(bytes.Length);
        bytes.CopyTo(_buffer[_position..]);
        _position += bytes.Length;
    }

    public void WriteGuid(HostGuid guid)
    {
        Need(HostGuid.Size);
        guid.WriteTo(_buffer[_position..]);
        _position += HostGuid.Size;
    }

    /// <summary>Writes a family byte (4 or 6) then the address bytes.</summary>
    public void WriteAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var v4 = address.AddressFamily == AddressFamily.InterNetwork;
        WriteByte(v4 ? (byte)4 : (byte)6);
        var size = v4 ? 4 : 16;
        Need(size);
        if (!address.TryWriteBytes(_buffer[_position..], out var written) || written != size)
        {
            throw new InvalidOperationException("Could not write address.");
        }

        _position += size;
    }

    public void WriteShortBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > byte.MaxValue)
        {
            throw new ArgumentException("Field longer than 255 bytes.", nameof(bytes));
        }

        WriteByte((byte)bytes.Length);
        WriteBytes(bytes);
    }

    /// <summary>Size of an address as written by <see cref="WriteAddress"/>.</summary>
    public static int AddressSize(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return address.AddressFamily == AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6 ? 5 : 17;
    }

    private readonly void Need(int count)
    {
        if (count > _buffer.Length - _position)
        {
            throw new InvalidOperationException($"Buffer too small: need {count} more bytes, {_buffer.Length - _position} left.");
        }
    }
}
