using System.Diagnostics;

namespace Mobility.Daemon.Transparent;

/// <summary>A failed system command (nft, ip, resolvectl), with what it wrote to stderr.</summary>
public sealed class ExternalCommandException : Exception
{
    public ExternalCommandException(string message) : base(message) { }

    public ExternalCommandException() : base("A system command failed.") { }

    public ExternalCommandException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>Runs the system tools transparent mode drives: nft (its table), ip (its routes), resolvectl.</summary>
public static class ExternalCommand
{
    /// <summary>How long one command may take; they are local and quick, so only a wedged tool reaches it.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>Runs <paramref name="file"/> with <paramref name="arguments"/> (and <paramref name="input"/> on stdin); returns its stdout, throws on a non-zero exit.</summary>
    public static async Task<string> RunAsync(string file, IEnumerable<string> arguments, string? input = null, CancellationToken cancellationToken = default)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var commandLine = file + " " + string.Join(' ', start.ArgumentList);
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new ExternalCommandException($"'{commandLine}' did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ExternalCommandException($"'{file}' cannot be run: {e.Message}.", e);
        }

        using (process)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(Timeout);
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            if (input is not null)
            {
                await process.StandardInput.WriteAsync(input.AsMemory(), timeout.Token).ConfigureAwait(false);
            }

            process.StandardInput.Close();
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new ExternalCommandException($"'{commandLine}' did not finish within {Timeout.TotalSeconds:0} s.");
            }

            var output = await stdout.ConfigureAwait(false);
            var error = (await stderr.ConfigureAwait(false)).Trim();
            return process.ExitCode == 0
                ? output
                : throw new ExternalCommandException($"'{commandLine}' failed (exit {process.ExitCode}): {(error.Length == 0 ? output.Trim() : error)}");
        }
    }
}
