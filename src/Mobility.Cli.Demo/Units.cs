using System.Globalization;

namespace Mobility.Cli.Demo;

/// <summary>Human units for the demo's output (binary prefixes, invariant culture).</summary>
public static class Units
{
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0
            ? string.Create(CultureInfo.InvariantCulture, $"{bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    public static string Rate(double bytesPerSecond)
        => string.Create(CultureInfo.InvariantCulture, $"{bytesPerSecond / (1024 * 1024):0.0} MiB/s");

    public static string Ms(double? milliseconds)
        => milliseconds is { } ms ? string.Create(CultureInfo.InvariantCulture, $"{ms:0.0} ms") : "-";

    public static string Hex(byte[]? hash) => hash is null ? "-" : Convert.ToHexStringLower(hash);
}
