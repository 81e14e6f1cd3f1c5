using System.Diagnostics;

namespace Mobility.Daemon.Tests.Infrastructure;

/// <summary>Runs short-lived tools (curl, keyctl, setpriv) with a timeout.</summary>
public static class Processes
{
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout ?? TaskTimeouts.Default);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout.Timed(), await stderr.Timed());
    }

    public static bool Exists(string tool)
        => (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Any(d => File.Exists(Path.Combine(d, tool)));

    public static bool IsRoot => Environment.UserName == "root";
}

/// <summary>A test that needs keyutils (keyctl and the kernel's request-key upcall) and root (to install the handler line).</summary>
public sealed class KeyutilsFactAttribute : FactAttribute
{
    public KeyutilsFactAttribute()
    {
        if (!Processes.Exists("keyctl") || !File.Exists("/sbin/request-key"))
        {
            Skip = "keyutils is not installed (apt-get install -y keyutils): the kernel upcall cannot be tested.";
        }
        else if (!Processes.IsRoot)
        {
            Skip = "installing /etc/request-key.d/mobility.conf needs root.";
        }
    }
}

/// <summary>A test that runs a client as another user (needs root, setpriv and curl).</summary>
public sealed class OtherUserFactAttribute : FactAttribute
{
    public OtherUserFactAttribute()
    {
        if (!Processes.IsRoot || !Processes.Exists("setpriv") || !Processes.Exists("curl"))
        {
            Skip = "needs root, setpriv and curl to connect as user nobody.";
        }
    }
}
