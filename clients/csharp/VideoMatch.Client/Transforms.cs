namespace VideoMatch.Client;

/// <summary>Row-major 3×3 transforms, as the server returns them (<c>Transform.matrix</c>).</summary>
public static class Transforms
{
    /// <summary>The product a·b: b applied first.</summary>
    public static double[] Multiply(double[] a, double[] b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var c = new double[9];
        for (var r = 0; r < 3; r++)
        {
            for (var k = 0; k < 3; k++)
            {
                c[(r * 3) + k] = (a[r * 3] * b[k]) + (a[(r * 3) + 1] * b[3 + k]) + (a[(r * 3) + 2] * b[6 + k]);
            }
        }

        return c;
    }

    /// <summary>The point (x, y) under the transform, divided through by its third coordinate.</summary>
    public static (double X, double Y) Apply(double[] m, double x, double y)
    {
        ArgumentNullException.ThrowIfNull(m);
        var w = (m[6] * x) + (m[7] * y) + m[8];
        return (((m[0] * x) + (m[1] * y) + m[2]) / w, ((m[3] * x) + (m[4] * y) + m[5]) / w);
    }
}

/// <summary>The names of the transforms the server can fit (<c>estimate</c>), as every client spells them.</summary>
public static class TransformModels
{
    /// <summary>"homography", "affine", "similarity".</summary>
    public static IReadOnlyList<string> Names { get; } = ["homography", "affine", "similarity"];

    /// <summary>The contract's value for a name; <see cref="Contracts.V1.TransformModel.Unspecified"/> for null.</summary>
    /// <exception cref="ArgumentException">Not one of <see cref="Names"/>.</exception>
    public static Contracts.V1.TransformModel Parse(string? name) => name switch
    {
        null => Contracts.V1.TransformModel.Unspecified,
        "homography" => Contracts.V1.TransformModel.Homography,
        "affine" => Contracts.V1.TransformModel.Affine,
        "similarity" => Contracts.V1.TransformModel.Similarity,
        _ => throw new ArgumentException($"'{name}' is not a transform the server fits; use {string.Join(", ", Names)}.", nameof(name)),
    };

    /// <summary>The name of a contract value; null for <see cref="Contracts.V1.TransformModel.Unspecified"/>.</summary>
    public static string? Name(Contracts.V1.TransformModel model) => model switch
    {
        Contracts.V1.TransformModel.Homography => "homography",
        Contracts.V1.TransformModel.Affine => "affine",
        Contracts.V1.TransformModel.Similarity => "similarity",
        _ => null,
    };
}
