namespace Mobility.Protocol.Records;

/// <summary>
/// Human-readable names bound to GUIDs. A name is one DNS label so that the DNS front end can
/// serve <c>name.zone</c>: 1 to 63 characters of a-z, 0-9 and '-', not starting or ending with
/// '-'. Names are case-insensitive; the canonical form is lowercase.
/// </summary>
public static class HostName
{
    public const int MaxLength = 63;

    /// <summary>Returns the canonical (lowercase) name, or null with a reason.</summary>
    public static string? Normalize(string? name, out string? error)
    {
        error = null;
        if (string.IsNullOrEmpty(name))
        {
            error = "A name must not be empty.";
            return null;
        }

        if (name.Length > MaxLength)
        {
            error = $"A name is at most {MaxLength} characters.";
            return null;
        }

        Span<char> lower = stackalloc char[name.Length];
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c is >= 'A' and <= 'Z')
            {
                c = (char)(c + 32);
            }

            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                error = $"A name may hold only letters, digits and '-'; '{Printable(name[i])}' is not allowed.";
                return null;
            }

            lower[i] = c;
        }

        if (lower[0] == '-' || lower[^1] == '-')
        {
            error = "A name must not start or end with '-'.";
            return null;
        }

        // 40 hex characters would be read as a GUID; refuse names that look like one.
        if (name.Length == 40 && Identity.HostGuid.TryParse(name, out _))
        {
            error = "A name must not look like a GUID.";
            return null;
        }

        return new string(lower);
    }

    public static bool IsValid(string? name) => Normalize(name, out _) is not null;

    private static string Printable(char c) => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString();
}
