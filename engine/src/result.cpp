// Names of engine error codes.
#include "glassbox/result.h"

namespace gb {

const char * error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::Io:              return "I/O error";
        case ErrorCode::InvalidFile:     return "invalid file";
        case ErrorCode::Unsupported:     return "unsupported";
        case ErrorCode::InvalidArgument: return "invalid argument";
        case ErrorCode::OutOfRange:      return "out of range";
        case ErrorCode::OutOfMemory:     return "out of memory";
        case ErrorCode::Cancelled:       return "cancelled";
        case ErrorCode::Internal:        return "internal error";
    }
    return "error";
}

}  // namespace gb
