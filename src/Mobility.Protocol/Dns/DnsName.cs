using System.Text;

namespace Mobility.Protocol.Dns;

/// <summary>
/// A domain name as its labels (raw octets, case preserved as received). Comparison helpers ignore
/// ASCII case (RFC 4343); other octets compare exactly.
/// </summary>
public sealed class DnsName
{
    public static readonly DnsName Root = new([]);

    public DnsName(IReadOnlyList<byte[]> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var length = 1;
        foreach (var label in labels)
        {
            if (label.Length is 0 or > DnsLimits.MaxLabelLength)
            {
                throw new ArgumentException($"A label is 1 to {DnsLimits.MaxLabelLength} octets.", nameof(labels));
            }

            length += label.Length + 1;
        }

        if (length > DnsLimits.MaxNameLength)
        {
            throw new ArgumentException($"A name is at most {DnsLimits.MaxNameLength} octets.", nameof(labels));
        }

        Labels = labels;
        WireLength = length;
    }

    public IReadOnlyList<byte[]> Labels { get; }

    /// <summary>Octets of the uncompressed wire form.</summary>
    public int WireLength { get; }

    /// <summary>Parses dotted text ("host.gns.example", trailing dot optional) of letters, digits, '-' and '_'.</summary>
    public static DnsName Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.EndsWith('.') ? text[..^1] : text;
        if (trimmed.Length == 0)
        {
            return Root;
        }

        var labels = new List<byte[]>();
        foreach (var label in trimmed.Split('.'))
        {
            if (label.Length == 0 || label.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
            {
                throw new FormatException($"'{text}' is not a domain name of letters, digits, '-' and '_'.");
            }

            labels.Add(Encoding.ASCII.GetBytes(label));
        }

        try
        {
            return new DnsName(labels);
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"'{text}' is not a valid domain name: {e.Message}", e);
        }
    }

    /// <summary>True when this name is <paramref name="zone"/> or below it (ASCII case ignored).</summary>
    public bool IsAtOrBelow(DnsName zone)
    {
        ArgumentNullException.ThrowIfNull(zone);
        var offset = Labels.Count - zone.Labels.Count;
        if (offset < 0)
        {
            return false;
        }

        for (var i = 0; i < zone.Labels.Count; i++)
        {
            if (!LabelEquals(Labels[offset + i], zone.Labels[i]))
            {
                return false;
            }
        }

        return true;
    }

    public static bool LabelEquals(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length)
        {
            return false;
        }

        for (var i = 0; i < a.Length; i++)
        {
            if (ToLower(a[i]) != ToLower(b[i]))
            {
                return false;
            }
        }

        return true;
    }

    public static byte ToLower(byte b) => b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b + 32) : b;

    /// <summary>Presentation form with non-printable octets, '.' and '\' escaped (RFC 1035 5.1); always ends with '.'.</summary>
    public override string ToString()
    {
        if (Labels.Count == 0)
        {
            return ".";
        }

        var sb = new StringBuilder();
        foreach (var label in Labels)
        {
            foreach (var b in label)
            {
                if (b is (byte)'.' or (byte)'\\')
                {
                    sb.Append('\\').Append((char)b);
                }
                else if (b is > 32 and < 127)
                {
                    sb.Append((char)b);
                }
                else
                {
                    sb.Append('\\').Append(b.ToString("D3", System.Globalization.CultureInfo.InvariantCulture));
                }
            }

            sb.Append('.');
        }

        return sb.ToString();
    }
}
