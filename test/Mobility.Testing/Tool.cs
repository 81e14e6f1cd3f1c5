using System.Diagnostics;

namespace Mobility.Testing;

/// <summary>Runs short-lived tools (curl, dig, keyctl, setpriv) with a timeout, and asks whether one is installed.</summary>
public static class Tool
{
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WithTimeout(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout.WithTimeout().ConfigureAwait(false), await stderr.WithTimeout().ConfigureAwait(false));
    }

    /// <summary>Like <see cref="RunAsync"/>, for a tool whose stdout is binary (a DER key, a signature).</summary>
    public static async Task<(int ExitCode, byte[] Stdout, string Stderr)> RunBinaryAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        using var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WithTimeout(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        await copy.WithTimeout().ConfigureAwait(false);
        return (process.ExitCode, stdout.ToArray(), await stderr.WithTimeout().ConfigureAwait(false));
    }

    /// <summary>True when <paramref name="tool"/> is on the PATH.</summary>
    public static bool Exists(string tool)
        => (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Any(d => File.Exists(Path.Combine(d, tool)));

    public static bool IsRoot => Environment.UserName == "root";
}
