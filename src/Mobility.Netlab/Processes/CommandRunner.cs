using System.Diagnostics;
using System.Text;

namespace Mobility.Netlab.Processes;

/// <summary>The outcome of a finished command.</summary>
public sealed record CommandResult(int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>Thrown when a command the harness needs fails.</summary>
public sealed class CommandFailedException(string message) : Exception(message);

/// <summary>Runs short commands (<c>ip</c>, <c>ping</c>, <c>sysctl</c>) to completion with a deadline.</summary>
public static class CommandRunner
{
    /// <summary>Default deadline for one configuration command; generous because the build machines are loaded.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Output kept per stream; configuration commands print little, so this only guards against runaways.</summary>
    public const int MaxCapturedChars = 1 << 20;

    public static async Task<CommandResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default, string? standardInput = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = standardInput is not null,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = new Process { StartInfo = startInfo };
        var stdout = new BoundedText(MaxCapturedChars);
        var stderr = new BoundedText(MaxCapturedChars);
        process.OutputDataReceived += (_, e) => stdout.AppendLine(e.Data);
        process.ErrorDataReceived += (_, e) => stderr.AppendLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput.AsMemory(), cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            TryKill(process);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"'{Describe(fileName, startInfo.ArgumentList)}' did not finish within {(timeout ?? DefaultTimeout).TotalSeconds:0.#} s");
        }

        // WaitForExitAsync returns once the output streams reached EOF as well.
        return new CommandResult(process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs a command and throws <see cref="CommandFailedException"/> unless it exits with 0.</summary>
    public static async Task<string> RunCheckedAsync(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default, string? standardInput = null)
    {
        var list = arguments as IReadOnlyList<string> ?? arguments.ToList();
        var result = await RunAsync(fileName, list, timeout, cancellationToken, standardInput).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            var input = standardInput is null ? "" : " <<< " + standardInput.Replace('\n', ';');
            throw new CommandFailedException($"'{Describe(fileName, list)}{input}' exited with {result.ExitCode}: {result.StandardError.Trim()}");
        }

        return result.StandardOutput;
    }

    public static string Describe(string fileName, IEnumerable<string> arguments) => fileName + " " + string.Join(' ', arguments);

    internal static void TryKill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }
}

/// <summary>A thread-safe text buffer that stops growing at a fixed size.</summary>
internal sealed class BoundedText(int maxChars)
{
    private readonly StringBuilder _text = new();
    private readonly Lock _lock = new();

    public void AppendLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            if (_text.Length + line.Length + 1 <= maxChars)
            {
                _text.Append(line).Append('\n');
            }
        }
    }

    public override string ToString()
    {
        lock (_lock)
        {
            return _text.ToString();
        }
    }
}
