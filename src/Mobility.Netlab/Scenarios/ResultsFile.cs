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

    public static Task WriteAsync<T>(string path, IReadOnlyList<T> results) => WriteObjectAsync(path, results);

    /// <summary>Writes one object (e.g. <see cref="EvaluationResults"/>) with the same options.</summary>
    public static async Task WriteObjectAsync<T>(string path, T results)
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
