using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;

namespace Mobility.Protocol.Identity;

/// <summary>
/// A host's self-certifying identifier: the first 160 bits of SHA-256 over the raw 32-byte
/// Ed25519 public key. Canonical text is 40 lowercase hex characters; parsing accepts uppercase.
/// Named to stay clear of <see cref="System.Guid"/>.
/// </summary>
public readonly struct HostGuid : IEquatable<HostGuid>, IComparable<HostGuid>, ISpanFormattable, ISpanParsable<HostGuid>
{
    /// <summary>Length of a GUID in bytes.</summary>
    public const int Size = 20;

    /// <summary>Length of the canonical text form.</summary>
    public const int TextLength = Size * 2;

    private readonly ulong _a;
    private readonly ulong _b;
    private readonly uint _c;

    private HostGuid(ulong a, ulong b, uint c)
    {
        _a = a;
        _b = b;
        _c = c;
    }

    /// <summary>The all-zero GUID; never the GUID of a real key (with overwhelming probability).</summary>
    public static HostGuid Empty => default;

    public bool IsEmpty => _a == 0 && _b == 0 && _c == 0;

    /// <summary>Reads a GUID from exactly <see cref="Size"/> bytes.</summary>
    public static HostGuid FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException($"A GUID is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        }

        return new HostGuid(
            BinaryPrimitives.ReadUInt64BigEndian(bytes),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]));
    }

    /// <summary>Derives the GUID of a raw 32-byte Ed25519 public key.</summary>
    public static HostGuid FromPublicKey(ReadOnlySpan<byte> rawPublicKey)
    {
        if (rawPublicKey.Length != HostKey.PublicKeySize)
        {
            throw new ArgumentException($"An Ed25519 public key is {HostKey.PublicKeySize} bytes, not {rawPublicKey.Length}.", nameof(rawPublicKey));
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(rawPublicKey, hash);
        return FromBytes(hash[..Size]);
    }

    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException("Destination too small.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt64BigEndian(destination, _a);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _b);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], _c);
    }

    public byte[] ToByteArray()
    {
        var bytes = new byte[Size];
        WriteTo(bytes);
        return bytes;
    }

    public static bool TryParse(ReadOnlySpan<char> text, out HostGuid guid)
    {
        guid = default;
        if (text.Length != TextLength)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Size];
        for (var i = 0; i < Size; i++)
        {
            var hi = HexValue(text[2 * i]);
            var lo = HexValue(text[(2 * i) + 1]);
            if ((hi | lo) < 0)
            {
                return false;
            }

            bytes[i] = (byte)((hi << 4) | lo);
        }

        guid = FromBytes(bytes);
        return true;
    }

    public static bool TryParse([NotNullWhen(true)] string? text, out HostGuid guid)
    {
        guid = default;
        return text is not null && TryParse(text.AsSpan(), out guid);
    }

    public static HostGuid Parse(string text)
        => TryParse(text, out var guid)
            ? guid
            : throw new FormatException($"'{Truncate(text)}' is not a GUID: expected {TextLength} hexadecimal characters.");

    public static HostGuid Parse(string s, IFormatProvider? provider) => Parse(s);

    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out HostGuid result) => TryParse(s, out result);

    public static HostGuid Parse(ReadOnlySpan<char> s, IFormatProvider? provider)
        => TryParse(s, out var guid) ? guid : throw new FormatException($"Not a GUID: expected {TextLength} hexadecimal characters.");

    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out HostGuid result) => TryParse(s, out result);

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        charsWritten = 0;
        if (destination.Length < TextLength)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Size];
        WriteTo(bytes);
        var ok = Convert.TryToHexStringLower(bytes, destination, out charsWritten);
        return ok;
    }

    /// <summary>A short prefix for logs and progress displays.</summary>
    public string ToShortString() => ToString()[..12];

    public bool Equals(HostGuid other) => _a == other._a && _b == other._b && _c == other._c;

    public override bool Equals(object? obj) => obj is HostGuid other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_a, _b, _c);

    public int CompareTo(HostGuid other)
    {
        var c = _a.CompareTo(other._a);
        if (c != 0)
        {
            return c;
        }

        c = _b.CompareTo(other._b);
        return c != 0 ? c : _c.CompareTo(other._c);
    }

    public static bool operator ==(HostGuid left, HostGuid right) => left.Equals(right);

    public static bool operator !=(HostGuid left, HostGuid right) => !left.Equals(right);

    public static bool operator <(HostGuid left, HostGuid right) => left.CompareTo(right) < 0;

    public static bool operator >(HostGuid left, HostGuid right) => left.CompareTo(right) > 0;

    public static bool operator <=(HostGuid left, HostGuid right) => left.CompareTo(right) <= 0;

    public static bool operator >=(HostGuid left, HostGuid right) => left.CompareTo(right) >= 0;

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };

    private static string Truncate(string? text)
        => text is null ? "" : text.Length <= 64 ? text : string.Concat(text.AsSpan(0, 64), "...");
}
