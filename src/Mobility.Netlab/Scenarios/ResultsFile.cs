using System.Text.Json;

namespace Mobility.Netlab.Scenarios;

/// <summary>Writes results as an indented JSON array with snake_case property names.</summary>
public static class ResultsFile
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    public static async Task WriteAsync<T>(string path, IReadOnlyList<T> results)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        var stream = File.Create(path);
        await using (stream.ConfigureAwait(false))
        {
            await JsonSerializer.SerializeAsync(stream, results, Options).ConfigureAwait(false);
        }
    }
}
