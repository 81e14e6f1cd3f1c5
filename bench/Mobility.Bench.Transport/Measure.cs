using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Mobility.Bench.Transport;

/// <summary>Percentiles, process counters and output helpers shared by the scenarios.</summary>
internal static class Measure
{
    public static double Percentile(List<double> sorted, double p)
        => sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    public static string LoadAverage()
        => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    /// <summary>A field of /proc/PID/status in kB (VmRSS, RssAnon, VmHWM, Threads...).</summary>
    public static long StatusField(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        return -1;
    }

    /// <summary>utime + stime of a process, in seconds (/proc/PID/stat).</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks / 100.0; // USER_HZ is 100 on Linux
    }

    public static int OpenFiles(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    public static double OwnCpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    public static string F(double value, string format = "0.00") => value.ToString(format, CultureInfo.InvariantCulture);

    public static void WriteJson(string? path, object results)
    {
        if (path is null)
        {
            return;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {path}");
    }
}

/// <summary>Ten thousand connections need more than the usual 1,024 file descriptors.</summary>
internal static class Limits
{
    private const int RlimitNofile = 7;

    /// <summary>Two descriptors per idle connection on each side (the flow, the relay's local socket) for 10,000 and more.</summary>
    private const ulong Wanted = 131_072;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Max;
    }

    /// <summary>Raises the soft fd limit to the hard one (children, such as the daemon, inherit it).</summary>
    public static void RaiseFileLimit()
    {
        if (!OperatingSystem.IsLinux() || GetRLimit(RlimitNofile, out var limit) != 0)
        {
            return;
        }

        // Root may raise the hard limit too (CAP_SYS_RESOURCE); otherwise the soft one goes up to the hard one.
        var wanted = new RLimit { Current = Math.Max(limit.Max, Wanted), Max = Math.Max(limit.Max, Wanted) };
        if (SetRLimit(RlimitNofile, ref wanted) != 0 && limit.Current < limit.Max)
        {
            limit.Current = limit.Max;
            _ = SetRLimit(RlimitNofile, ref limit);
        }
    }

    public static ulong FileLimit() => GetRLimit(RlimitNofile, out var limit) == 0 ? limit.Current : 0;

    [DllImport("libc", EntryPoint = "getrlimit")]
    private static extern int GetRLimit(int resource, out RLimit limit);

    [DllImport("libc", EntryPoint = "setrlimit")]
    private static extern int SetRLimit(int resource, ref RLimit limit);
}
