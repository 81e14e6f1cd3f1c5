using System.Diagnostics;

namespace Mobility.Testing;

/// <summary>Runs short-lived tools (curl, dig, keyctl, setpriv) with a timeout, and asks whether one is installed.</summary>
public static class Tool
{
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        using var process = Start(file, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await WaitForExitAsync(process, timeout).ConfigureAwait(false);

        return (process.ExitCode, await stdout.WithTimeout().ConfigureAwait(false), await stderr.WithTimeout().ConfigureAwait(false));
    }

    /// <summary>Like <see cref="RunAsync"/>, for a tool whose stdout is binary (a DER key, a signature).</summary>
    public static async Task<(int ExitCode, byte[] Stdout, string Stderr)> RunBinaryAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        using var process = Start(file, args);
        using var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        await WaitForExitAsync(process, timeout).ConfigureAwait(false);

        await copy.WithTimeout().ConfigureAwait(false);
        return (process.ExitCode, stdout.ToArray(), await stderr.WithTimeout().ConfigureAwait(false));
    }

    /// <summary>Starts <paramref name="file"/> with its output and error redirected.</summary>
    private static Process Start(string file, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
    }

    /// <summary>Waits for the tool to exit; past <paramref name="timeout"/> it is killed (with its children) and the timeout thrown.</summary>
    private static async Task WaitForExitAsync(Process process, TimeSpan? timeout)
    {
        try
        {
            await process.WaitForExitAsync().WithTimeout(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
    }

    /// <summary>True when <paramref name="tool"/> is on the PATH.</summary>
    public static bool Exists(string tool)
        => (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Any(d => File.Exists(Path.Combine(d, tool)));

    public static bool IsRoot => Environment.UserName == "root";
}
