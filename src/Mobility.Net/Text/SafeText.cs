using System.Text;

namespace Mobility.Net.Text;

/// <summary>Text from a peer, a socket error or a log made safe for one terminal or log line.</summary>
public static class SafeText
{
    /// <summary>Line breaks become spaces and other control characters '?', so the text cannot start a line or move the cursor; empty is "failed".</summary>
    public static string OneLine(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "failed";
        }

        var sb = new StringBuilder(text.Length);
        foreach (var c in text.Trim())
        {
            sb.Append(c is '\r' or '\n' ? ' ' : char.IsControl(c) ? '?' : c);
        }

        return sb.ToString();
    }
}
