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
        using var command = Start(fileName, arguments, standardInput is not null);
        return await command.FinishAsync(standardInput, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts a command whose input is given later (<paramref name="inputLater"/>: its standard input stays open until
    /// <see cref="StartedCommand.FinishAsync"/> writes it), its output captured as <see cref="RunAsync"/>'s.
    /// </summary>
    public static StartedCommand Start(string fileName, IEnumerable<string> arguments, bool inputLater)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = inputLater,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        return new StartedCommand(startInfo);
    }

    /// <summary>Runs a command and throws <see cref="CommandFailedException"/> unless it exits with 0.</summary>
    public static async Task<string> RunCheckedAsync(string fileName, IEnumerable<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default, string? standardInput = null)
    {
        var list = arguments as IReadOnlyList<string> ?? arguments.ToList();
        var result = await RunAsync(fileName, list, timeout, cancellationToken, standardInput).ConfigureAwait(false);
        return Checked(Describe(fileName, list), standardInput, result);
    }

    /// <summary>The standard output of a command that exited with 0; else <see cref="CommandFailedException"/> naming it, its input and its error output.</summary>
    internal static string Checked(string description, string? standardInput, CommandResult result)
    {
        if (!result.Succeeded)
        {
            var input = standardInput is null ? "" : " <<< " + standardInput.Replace('\n', ';');
            throw new CommandFailedException($"'{description}{input}' exited with {result.ExitCode}: {result.StandardError.Trim()}");
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

/// <summary>A command started by <see cref="CommandRunner.Start"/>: running, its output captured, its input (if any) still open.</summary>
public sealed class StartedCommand : IDisposable
{
    private readonly Process _process;
    private readonly BoundedText _stdout = new(CommandRunner.MaxCapturedChars);
    private readonly BoundedText _stderr = new(CommandRunner.MaxCapturedChars);

    internal StartedCommand(ProcessStartInfo startInfo)
    {
        Description = CommandRunner.Describe(startInfo.FileName, startInfo.ArgumentList);
        _process = new Process { StartInfo = startInfo };
        _process.OutputDataReceived += (_, e) => _stdout.AppendLine(e.Data);
        _process.ErrorDataReceived += (_, e) => _stderr.AppendLine(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The command line, for messages.</summary>
    public string Description { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Writes <paramref name="standardInput"/> (when the input was kept open; null closes it with nothing written) and waits
    /// for the exit; after <paramref name="timeout"/> (<see cref="CommandRunner.DefaultTimeout"/>) the process is killed and
    /// <see cref="TimeoutException"/> thrown.
    /// </summary>
    public async Task<CommandResult> FinishAsync(string? standardInput, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (_process.StartInfo.RedirectStandardInput)
        {
            try
            {
                if (standardInput is not null)
                {
                    await _process.StandardInput.WriteAsync(standardInput.AsMemory(), cancellationToken).ConfigureAwait(false);
                }

                _process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The process ended before reading: its exit code and error output say why.
            }
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout ?? CommandRunner.DefaultTimeout);
        try
        {
            await _process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            CommandRunner.TryKill(_process);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"'{Description}' did not finish within {(timeout ?? CommandRunner.DefaultTimeout).TotalSeconds:0.#} s");
        }

        // WaitForExitAsync returns once the output streams reached EOF as well.
        return new CommandResult(_process.ExitCode, _stdout.ToString(), _stderr.ToString());
    }

    public void Dispose() => _process.Dispose();
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
